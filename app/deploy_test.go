package app

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/gleitzeit/gleitzeit/lifecycle"
)

type probe struct {
	HTTPGet struct {
		Path string `json:"path"`
		Port string `json:"port"`
	} `json:"httpGet"`
	PeriodSeconds    int `json:"periodSeconds"`
	FailureThreshold int `json:"failureThreshold"`
	TimeoutSeconds   int `json:"timeoutSeconds"`
}

type deployment struct {
	Spec struct {
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int `json:"terminationGracePeriodSeconds"`
				Containers                    []struct {
					Args []string `json:"args"`
					Env  []struct {
						Name  string `json:"name"`
						Value string `json:"value"`
					} `json:"env"`
					Ports []struct {
						Name          string `json:"name"`
						ContainerPort int    `json:"containerPort"`
					} `json:"ports"`
					ReadinessProbe probe `json:"readinessProbe"`
					LivenessProbe  probe `json:"livenessProbe"`
					VolumeMounts   []struct {
						Name      string `json:"name"`
						MountPath string `json:"mountPath"`
					} `json:"volumeMounts"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

func readManifest(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", name))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v))
}

// The manifests agree with the service: its configuration loads, its
// shutdown fits in the grace period, its drain delay outlasts a readiness
// period, and the probes reach the right paths on the right port.
func TestDeployManifestsAgreeWithTheService(t *testing.T) {
	var d deployment
	readManifest(t, "deployment.yaml", &d)
	pod := d.Spec.Template.Spec
	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]

	var cm struct {
		Data map[string]string `json:"data"`
	}
	readManifest(t, "configmap.yaml", &cm)
	configPath := filepath.Join(t.TempDir(), "gleitzeit.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte(cm.Data["gleitzeit.yaml"]), 0o600))
	require.Equal(t, []string{"-config", "/etc/gleitzeit/gleitzeit.yaml"}, c.Args)
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.MountPath == filepath.Dir(c.Args[1])
	}
	assert.True(t, mounted, "the config file is mounted where -config looks")

	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	s, err := Load([]string{"-config", configPath}, func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err, "the ConfigMap's configuration loads")

	grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second
	assert.Less(t, s.ShutdownTimeout, grace, "the service finishes shutting down before Kubernetes kills it")
	assert.LessOrEqual(t, s.ShutdownTimeout+2*time.Second, grace, "with room for the process to exit")

	defaults, err := Load(nil, noEnv, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Less(t, defaults.ShutdownTimeout, grace, "the default shutdown timeout fits too")

	ready := c.ReadinessProbe
	assert.Equal(t, "/readyz", ready.HTTPGet.Path)
	assert.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	window := time.Duration(ready.PeriodSeconds*ready.FailureThreshold) * time.Second
	assert.Greater(t, s.DrainDelay, window, "readiness fails before the listener closes")
	assert.Greater(t, time.Duration(ready.TimeoutSeconds)*time.Second, lifecycle.DefaultHealthTimeout,
		"a readiness probe outlasts the health checks it runs")

	_, port, err := net.SplitHostPort(s.Addr)
	require.NoError(t, err)
	assert.False(t, strings.HasPrefix(s.Addr, "127."), "the pod listens beyond loopback")
	for _, p := range []probe{ready, c.LivenessProbe} {
		found := false
		for _, cp := range c.Ports {
			if cp.Name == p.HTTPGet.Port {
				found = true
				assert.Equal(t, port, strconv.Itoa(cp.ContainerPort), "probe port %q is the service's", cp.Name)
			}
		}
		assert.True(t, found, "probe port %q is declared", p.HTTPGet.Port)
	}

	var svc struct {
		Spec struct {
			Ports []struct {
				TargetPort string `json:"targetPort"`
			} `json:"ports"`
		} `json:"spec"`
	}
	readManifest(t, "service.yaml", &svc)
	require.Len(t, svc.Spec.Ports, 1)
	assert.Equal(t, c.Ports[0].Name, svc.Spec.Ports[0].TargetPort)
}
