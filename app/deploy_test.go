package app

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/gleitzeit/gleitzeit/app/config"
	"github.com/gleitzeit/gleitzeit/lifecycle"
	"github.com/gleitzeit/gleitzeit/providers/sqldb"
)

// The overlays of deploy/, each what `kubectl apply -k` applies.
var overlays = []string{"single", "replicated"}

// secretStandIns are what the tests give, for the service's configuration
// to load, to the variables the Deployment takes from Secrets. A variable
// from a Secret that is not here fails the tests: say what it should hold.
var secretStandIns = map[string]string{
	"GLEITZEIT_ADMIN_TOKEN": "t0ken",
	"GLEITZEIT_TASK_TOKEN":  "t4sk",
	"GLEITZEIT_STORE_DSN":   "postgres://gleitzeit:hunter2@postgres:5432/gleitzeit",
}

type probe struct {
	HTTPGet struct {
		Path string `json:"path"`
		Port string `json:"port"`
	} `json:"httpGet"`
	PeriodSeconds    int `json:"periodSeconds"`
	FailureThreshold int `json:"failureThreshold"`
	TimeoutSeconds   int `json:"timeoutSeconds"`
}

type labelSelector struct {
	MatchLabels      map[string]string `json:"matchLabels"`
	MatchExpressions []any             `json:"matchExpressions"`
}

type envVar struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	ValueFrom *struct {
		SecretKeyRef *struct {
			Name     string `json:"name"`
			Key      string `json:"key"`
			Optional bool   `json:"optional"`
		} `json:"secretKeyRef"`
	} `json:"valueFrom"`
}

type container struct {
	Image     string   `json:"image"`
	Args      []string `json:"args"`
	Env       []envVar `json:"env"`
	Resources struct {
		Requests map[string]string `json:"requests"`
	} `json:"resources"`
	Ports []struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
	} `json:"ports"`
	ReadinessProbe probe `json:"readinessProbe"`
	LivenessProbe  probe `json:"livenessProbe"`
	VolumeMounts   []struct {
		Name      string `json:"name"`
		MountPath string `json:"mountPath"`
		ReadOnly  bool   `json:"readOnly"`
	} `json:"volumeMounts"`
	SecurityContext struct {
		ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem"`
	} `json:"securityContext"`
}

type volume struct {
	Name     string `json:"name"`
	EmptyDir *struct {
		SizeLimit string `json:"sizeLimit"`
	} `json:"emptyDir"`
	PersistentVolumeClaim *struct {
		ClaimName string `json:"claimName"`
	} `json:"persistentVolumeClaim"`
}

type deployment struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Replicas *int          `json:"replicas"`
		Selector labelSelector `json:"selector"`
		Strategy struct {
			Type          string `json:"type"`
			RollingUpdate *struct {
				MaxUnavailable any `json:"maxUnavailable"`
				MaxSurge       any `json:"maxSurge"`
			} `json:"rollingUpdate"`
		} `json:"strategy"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int         `json:"terminationGracePeriodSeconds"`
				Containers                    []container `json:"containers"`
				InitContainers                []container `json:"initContainers"`
				Volumes                       []volume    `json:"volumes"`
				TopologySpreadConstraints     []struct {
					TopologyKey       string        `json:"topologyKey"`
					WhenUnsatisfiable string        `json:"whenUnsatisfiable"`
					NodeTaintsPolicy  string        `json:"nodeTaintsPolicy"`
					LabelSelector     labelSelector `json:"labelSelector"`
				} `json:"topologySpreadConstraints"`
			} `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type hpa struct {
	Spec struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicas int `json:"minReplicas"`
		MaxReplicas int `json:"maxReplicas"`
		Metrics     []struct {
			Type     string `json:"type"`
			Resource *struct {
				Name   string `json:"name"`
				Target struct {
					Type               string `json:"type"`
					AverageUtilization int    `json:"averageUtilization"`
				} `json:"target"`
			} `json:"resource"`
			Pods *struct {
				Metric struct {
					Name string `json:"name"`
				} `json:"metric"`
			} `json:"pods"`
		} `json:"metrics"`
	} `json:"spec"`
}

// manifests are an overlay's resources as kustomize renders them, as YAML
// by kind.
type manifests map[string][][]byte

func render(t *testing.T, overlay string) manifests {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).
		Run(filesys.MakeFsOnDisk(), filepath.Join("..", "deploy", "overlays", overlay))
	require.NoError(t, err, "kustomize renders the overlay %s", overlay)
	out := manifests{}
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		require.NoError(t, err)
		out[r.GetKind()] = append(out[r.GetKind()], b)
	}
	return out
}

// one decodes the only resource of the kind.
func (m manifests) one(t *testing.T, kind string, v any) {
	t.Helper()
	require.Len(t, m[kind], 1, "one %s", kind)
	require.NoError(t, yaml.Unmarshal(m[kind][0], v))
}

// pod is an overlay's Deployment, its container, and the service's settings
// as that container loads them from the ConfigMap and its environment.
type pod struct {
	d          deployment
	c          container
	s          *config.Settings
	configPath string // the ConfigMap's configuration, written out
}

func loadPod(t *testing.T, m manifests) pod {
	t.Helper()
	var p pod
	m.one(t, "Deployment", &p.d)
	require.Len(t, p.d.Spec.Template.Spec.Containers, 1)
	p.c = p.d.Spec.Template.Spec.Containers[0]

	var cm struct {
		Data map[string]string `json:"data"`
	}
	m.one(t, "ConfigMap", &cm)
	configPath := filepath.Join(t.TempDir(), "gleitzeit.yaml")
	require.NoError(t, os.WriteFile(configPath, []byte(cm.Data["gleitzeit.yaml"]), 0o600))
	p.configPath = configPath
	require.Equal(t, []string{"-config", "/etc/gleitzeit/gleitzeit.yaml"}, p.c.Args)
	assert.NotEmpty(t, p.mount(filepath.Dir(p.c.Args[1])), "the config file is mounted where -config looks")

	env := map[string]string{}
	for _, e := range p.c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			standIn, ok := secretStandIns[e.Name]
			require.True(t, ok, "%s comes from a Secret: give it a stand-in in secretStandIns", e.Name)
			env[e.Name] = standIn
		}
	}
	var err error
	p.s, err = config.Load([]string{"-config", configPath}, func(k string) string { return env[k] }, &bytes.Buffer{})
	require.NoError(t, err, "the ConfigMap's configuration loads")
	return p
}

// mount is the name of the volume mounted at path.
func (p pod) mount(path string) string {
	for _, m := range p.c.VolumeMounts {
		if m.MountPath == path {
			return m.Name
		}
	}
	return ""
}

// dataVolume is the volume that holds data_dir.
func (p pod) dataVolume(t *testing.T) volume {
	t.Helper()
	name := p.mount(p.s.DataDir)
	require.NotEmpty(t, name, "data_dir %s is mounted", p.s.DataDir)
	for _, v := range p.d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	require.Failf(t, "no volume", "volume %q mounted at data_dir is not declared", name)
	return volume{}
}

func (p pod) env(name string) (envVar, bool) {
	for _, e := range p.c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return envVar{}, false
}

// selects reports whether a selector picks pods with these labels. The
// manifests use matchLabels only; an empty selector would pick every pod
// in the namespace.
func selects(t *testing.T, sel labelSelector, labels map[string]string) bool {
	t.Helper()
	require.Empty(t, sel.MatchExpressions, "these tests read matchLabels only")
	if len(sel.MatchLabels) == 0 {
		return false
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// bytesOf reads a Kubernetes quantity with a binary suffix, such as 512Mi:
// what the manifests use for sizes.
func bytesOf(t *testing.T, q string) int64 {
	t.Helper()
	for i, suffix := range []string{"Ki", "Mi", "Gi", "Ti"} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			require.NoError(t, err, "quantity %q", q)
			return v << (10 * (i + 1))
		}
	}
	require.Failf(t, "quantity", "want a size such as 512Mi, got %q", q)
	return 0
}

// intOf reads an int-or-string field that these manifests give as a number.
func intOf(t *testing.T, field string, v any) int {
	t.Helper()
	n, ok := v.(float64)
	require.True(t, ok, "%s is a number of pods, not %v (%T)", field, v, v)
	return int(n)
}

// The manifests agree with the service, in each overlay: its configuration
// loads, its shutdown fits in the grace period, its drain delay outlasts a
// readiness period, the probes reach the right paths on the right port,
// the Service reaches the pods, and the data volume holds the audit log.
func TestDeployManifestsAgreeWithTheService(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			m := render(t, overlay)
			p := loadPod(t, m)
			c, s := p.c, p.s

			// Found in review: on a read-only root, SQLite cannot spill a
			// large sort (the index -migrate builds) without a writable /tmp.
			spec := p.d.Spec.Template.Spec
			for _, k := range append(slices.Clone(spec.Containers), spec.InitContainers...) {
				if !k.SecurityContext.ReadOnlyRootFilesystem {
					continue
				}
				tmp := false
				for _, vm := range k.VolumeMounts {
					if vm.MountPath == "/tmp" && !vm.ReadOnly {
						for _, v := range spec.Volumes {
							tmp = tmp || v.Name == vm.Name && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil)
						}
					}
				}
				assert.True(t, tmp, "a container with a read-only root (args %v) has a writable /tmp", k.Args)
			}

			grace := time.Duration(p.d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
			assert.Less(t, s.ShutdownTimeout, grace, "the service finishes shutting down before Kubernetes kills it")
			assert.LessOrEqual(t, s.ShutdownTimeout+2*time.Second, grace, "with room for the process to exit")

			defaults, err := config.Load(nil, noEnv, &bytes.Buffer{})
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
			for _, pr := range []probe{ready, c.LivenessProbe} {
				found := false
				for _, cp := range c.Ports {
					if cp.Name == pr.HTTPGet.Port {
						found = true
						assert.Equal(t, port, strconv.Itoa(cp.ContainerPort), "probe port %q is the service's", cp.Name)
					}
				}
				assert.True(t, found, "probe port %q is declared", pr.HTTPGet.Port)
			}

			var svc struct {
				Spec struct {
					Selector map[string]string `json:"selector"`
					Ports    []struct {
						TargetPort string `json:"targetPort"`
					} `json:"ports"`
				} `json:"spec"`
			}
			m.one(t, "Service", &svc)
			require.NotEmpty(t, svc.Spec.Ports)
			for _, sp := range svc.Spec.Ports {
				assert.Contains(t, []string{"http", "admin"}, sp.TargetPort, "the Service reaches the service's ports")
			}
			assert.Equal(t, "http", svc.Spec.Ports[0].TargetPort, "the Service's first port is the tasks'")
			checkAdminPort(t, p)
			labels := p.d.Spec.Template.Metadata.Labels
			assert.True(t, selects(t, labelSelector{MatchLabels: svc.Spec.Selector}, labels), "the Service selects the pods")
			assert.True(t, selects(t, p.d.Spec.Selector, labels), "the Deployment selects its pods")

			// Past an emptyDir's sizeLimit the kubelet evicts the pod; a
			// full claim fails the writes.
			auditMax := int64(s.AuditMaxFiles+1) * s.AuditMaxBytes
			data := p.dataVolume(t)
			switch {
			case data.EmptyDir != nil && data.EmptyDir.SizeLimit != "":
				assert.GreaterOrEqual(t, bytesOf(t, data.EmptyDir.SizeLimit), auditMax, "the data volume holds the audit log at its largest")
			case data.PersistentVolumeClaim != nil:
				var pvc struct {
					Spec struct {
						Resources struct {
							Requests map[string]string `json:"requests"`
						} `json:"resources"`
					} `json:"spec"`
				}
				m.one(t, "PersistentVolumeClaim", &pvc)
				assert.Greater(t, bytesOf(t, pvc.Spec.Resources.Requests["storage"]), auditMax,
					"the claim holds the audit log at its largest, and the task store")
			}
		})
	}
}

// The single overlay runs one writer on SQLite, whose file outlives the
// pod: one replica, the store in data_dir on a claim that one node mounts,
// and an update that stops the old pod before the new one starts.
func TestDeploySingleRunsOneWriter(t *testing.T) {
	m := render(t, "single")
	p := loadPod(t, m)

	require.NotNil(t, p.d.Spec.Replicas, "the replica count is set")
	assert.Equal(t, 1, *p.d.Spec.Replicas)
	assert.Empty(t, m["HorizontalPodAutoscaler"], "nothing scales SQLite's one writer out")
	assert.Equal(t, "Recreate", p.d.Spec.Strategy.Type, "the old pod lets go of the database and the volume first")
	assert.Nil(t, p.d.Spec.Strategy.RollingUpdate, "Kubernetes refuses rollingUpdate with Recreate")

	_, fromEnv := p.env("GLEITZEIT_STORE_DSN")
	assert.False(t, fromEnv, "the store is the default: SQLite in data_dir")
	assert.True(t, strings.HasPrefix(p.s.StoreDSN, p.s.DataDir+string(filepath.Separator)), "SQLite at %s is in data_dir", p.s.StoreDSN)

	data := p.dataVolume(t)
	assert.Nil(t, data.EmptyDir, "data_dir outlives the pod")
	require.NotNil(t, data.PersistentVolumeClaim, "data_dir is on a claim")
	var pvc struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			AccessModes []string `json:"accessModes"`
		} `json:"spec"`
	}
	m.one(t, "PersistentVolumeClaim", &pvc)
	assert.Equal(t, pvc.Metadata.Name, data.PersistentVolumeClaim.ClaimName, "the claim is the overlay's")
	assert.Equal(t, []string{"ReadWriteOnce"}, pvc.Spec.AccessModes)

	// The service refuses an older schema: an init container upgrades the
	// file first, with the service's image, configuration and data.
	inits := p.d.Spec.Template.Spec.InitContainers
	require.Len(t, inits, 1, "an init container migrates the store")
	migrate := inits[0]
	assert.Equal(t, append(slices.Clone(p.c.Args), "-migrate"), migrate.Args)
	assert.Equal(t, p.c.Image, migrate.Image, "the schema is the new image's")
	assert.Equal(t, p.c.VolumeMounts, migrate.VolumeMounts, "it sees the configuration and the store where the service does")
	var cfg bytes.Buffer
	s, err := config.Load(append([]string{"-config", p.configPath}, migrate.Args[2:]...), noEnv, &cfg)
	require.NoError(t, err, "its flags load")
	assert.True(t, s.Migrate)
}

// The replicated overlay shares one PostgreSQL database among replicas that
// an autoscaler counts, that a disruption or an update takes down one at a
// time at most, and that are spread over nodes.
func TestDeployReplicatedSurvivesLosingAPod(t *testing.T) {
	m := render(t, "replicated")
	p := loadPod(t, m)
	labels := p.d.Spec.Template.Metadata.Labels

	// The store.
	dsn, ok := p.env("GLEITZEIT_STORE_DSN")
	require.True(t, ok, "the Deployment sets GLEITZEIT_STORE_DSN")
	assert.Empty(t, dsn.Value, "the DSN, with its password, is never a literal")
	require.True(t, dsn.ValueFrom != nil && dsn.ValueFrom.SecretKeyRef != nil, "the DSN comes from a Secret")
	ref := dsn.ValueFrom.SecretKeyRef
	assert.Equal(t, "gleitzeit-store", ref.Name, "the Secret the README names")
	assert.Equal(t, "dsn", ref.Key, "the key the README names")
	assert.False(t, ref.Optional, "without the Secret a pod does not start, rather than run a store of its own on its emptyDir")
	assert.Equal(t, secretStandIns["GLEITZEIT_STORE_DSN"], p.s.StoreDSN, "the service reads its DSN from that variable")
	data := p.dataVolume(t)
	assert.NotNil(t, data.EmptyDir, "data_dir holds only the audit log: nothing to keep")

	// The count, which the autoscaler owns.
	var h hpa
	m.one(t, "HorizontalPodAutoscaler", &h)
	assert.Nil(t, p.d.Spec.Replicas, "no replica count: every kubectl apply would scale the Deployment back to it")
	assert.Equal(t, 3, h.Spec.MinReplicas)
	assert.Greater(t, h.Spec.MaxReplicas, h.Spec.MinReplicas)
	target := h.Spec.ScaleTargetRef
	assert.Equal(t, []string{"apps/v1", "Deployment", p.d.Metadata.Name}, []string{target.APIVersion, target.Kind, target.Name},
		"the autoscaler scales this Deployment")
	cpu := false
	for _, metric := range h.Spec.Metrics {
		if metric.Type == "Resource" && metric.Resource != nil && metric.Resource.Name == "cpu" {
			cpu = true
			assert.Equal(t, "Utilization", metric.Resource.Target.Type)
			assert.Greater(t, metric.Resource.Target.AverageUtilization, 0)
			assert.LessOrEqual(t, metric.Resource.Target.AverageUtilization, 100)
		}
	}
	assert.True(t, cpu, "the autoscaler scales on CPU")
	assert.NotEmpty(t, p.c.Resources.Requests["cpu"], "CPU utilization is a share of the container's request")

	// Disruptions: one pod at a time, whatever the count, and two left.
	var pdb struct {
		Spec struct {
			Selector       labelSelector `json:"selector"`
			MinAvailable   any           `json:"minAvailable"`
			MaxUnavailable any           `json:"maxUnavailable"`
		} `json:"spec"`
	}
	m.one(t, "PodDisruptionBudget", &pdb)
	assert.True(t, selects(t, pdb.Spec.Selector, labels), "the budget covers the pods")
	require.True(t, (pdb.Spec.MinAvailable == nil) != (pdb.Spec.MaxUnavailable == nil), "the budget sets minAvailable or maxUnavailable")
	for n := h.Spec.MinReplicas; n <= h.Spec.MaxReplicas; n++ {
		down := 0
		if pdb.Spec.MaxUnavailable != nil {
			down = intOf(t, "maxUnavailable", pdb.Spec.MaxUnavailable)
		} else {
			down = n - intOf(t, "minAvailable", pdb.Spec.MinAvailable)
		}
		assert.Equal(t, 1, down, "at %d replicas, one pod may be evicted: no more, and not none (a drain would wait forever)", n)
		assert.GreaterOrEqual(t, n-down, 2, "at %d replicas, two serve while one is evicted", n)
	}

	// Updates: a new pod ready before an old one stops.
	assert.Equal(t, "RollingUpdate", p.d.Spec.Strategy.Type)
	require.NotNil(t, p.d.Spec.Strategy.RollingUpdate)
	assert.Equal(t, 0, intOf(t, "maxUnavailable", p.d.Spec.Strategy.RollingUpdate.MaxUnavailable), "an update takes no pod down first")
	assert.GreaterOrEqual(t, intOf(t, "maxSurge", p.d.Spec.Strategy.RollingUpdate.MaxSurge), 1, "so it must add one")

	// Connections: the most pods there can be, each with its pool, fit in
	// PostgreSQL's default max_connections (100, 3 kept for superusers).
	// Found in review: 10 replicas and a surge would take 110.
	most := h.Spec.MaxReplicas + intOf(t, "maxSurge", p.d.Spec.Strategy.RollingUpdate.MaxSurge)
	store, err := sqldb.New(p.s.StoreConfig())
	require.NoError(t, err)
	assert.LessOrEqual(t, most*store.MaxOpenConns(), 97, "%d pods of %d connections each", most, store.MaxOpenConns())

	// Placement.
	keys := map[string]bool{}
	for _, tsc := range p.d.Spec.Template.Spec.TopologySpreadConstraints {
		keys[tsc.TopologyKey] = true
		assert.True(t, selects(t, tsc.LabelSelector, labels), "the spread over %s counts the pods", tsc.TopologyKey)
		if tsc.WhenUnsatisfiable == "DoNotSchedule" {
			// Found in review: tainted nodes counted as empty domains
			// would hold new pods Pending.
			assert.Equal(t, "Honor", tsc.NodeTaintsPolicy, "a strict spread over %s ignores nodes pods cannot use", tsc.TopologyKey)
		}
	}
	assert.True(t, keys["kubernetes.io/hostname"], "the pods are spread over nodes")
}

// The example of scaling on the pools' queues names a metric the service
// serves, and is otherwise the overlay's autoscaler, so that it can
// replace it.
func TestDeployQueueDepthExampleNamesAServedMetric(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "overlays", "replicated", "hpa-queue-depth.example.yaml"))
	require.NoError(t, err)
	var example map[string]any
	require.NoError(t, yaml.Unmarshal(b, &example))
	var typed hpa
	require.NoError(t, yaml.Unmarshal(b, &typed))

	ch := make(chan *prometheus.Desc, 16) // pools.Describe sends a handful and returns
	pools{}.Describe(ch)
	close(ch)
	var served []string
	for d := range ch {
		served = append(served, d.String())
	}
	var named []string
	for _, metric := range typed.Spec.Metrics {
		if metric.Type == "Pods" {
			require.NotNil(t, metric.Pods)
			named = append(named, metric.Pods.Metric.Name)
			assert.Contains(t, strings.Join(served, "\n"), `fqName: "`+metric.Pods.Metric.Name+`"`, "the service serves %s", metric.Pods.Metric.Name)
		}
	}
	assert.Equal(t, []string{"gleitzeit_pool_queue_depth"}, named)

	// Without its Pods metric, the example is the overlay's autoscaler.
	spec := example["spec"].(map[string]any)
	var kept []any
	for _, metric := range spec["metrics"].([]any) {
		if metric.(map[string]any)["type"] != "Pods" {
			kept = append(kept, metric)
		}
	}
	spec["metrics"] = kept
	var rendered map[string]any
	render(t, "replicated").one(t, "HorizontalPodAutoscaler", &rendered)
	assert.Equal(t, rendered, example)
}

// The example Job that upgrades the schema before a rollout runs the
// service's image with -migrate on the replicated overlay's configuration
// and store, and is not one of the overlay's resources (a Job cannot be
// applied again with a new image).
func TestDeployMigrateJobExampleMigratesTheReplicasStore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "overlays", "replicated", "migrate-job.example.yaml"))
	require.NoError(t, err)
	var job struct {
		Kind string `json:"kind"`
		Spec struct {
			Template struct {
				Spec struct {
					RestartPolicy string      `json:"restartPolicy"`
					Containers    []container `json:"containers"`
					Volumes       []volume    `json:"volumes"`
				} `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(b, &job))
	assert.Equal(t, "Job", job.Kind)
	assert.Equal(t, "Never", job.Spec.Template.Spec.RestartPolicy)
	require.Len(t, job.Spec.Template.Spec.Containers, 1)
	c := job.Spec.Template.Spec.Containers[0]

	m := render(t, "replicated")
	assert.Empty(t, m["Job"], "the Job is an example, applied by hand")
	p := loadPod(t, m)
	assert.Equal(t, p.c.Image, c.Image)
	assert.Equal(t, append(slices.Clone(p.c.Args), "-migrate"), c.Args)
	assert.Equal(t, p.c.VolumeMounts, c.VolumeMounts, "the configuration where -config looks")
	var podDSN, jobDSN *envVar
	for i := range p.c.Env {
		if p.c.Env[i].Name == "GLEITZEIT_STORE_DSN" {
			podDSN = &p.c.Env[i]
		}
	}
	for i := range c.Env {
		if c.Env[i].Name == "GLEITZEIT_STORE_DSN" {
			jobDSN = &c.Env[i]
		}
	}
	require.NotNil(t, jobDSN, "the Job reads the store's DSN")
	assert.Equal(t, podDSN, jobDSN, "from the replicas' Secret, never a literal")
	var configVolume *volume
	for i, v := range job.Spec.Template.Spec.Volumes {
		if v.Name == "config" {
			configVolume = &job.Spec.Template.Spec.Volumes[i]
		}
	}
	require.NotNil(t, configVolume)
	var cm struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	m.one(t, "ConfigMap", &cm)
	raw, err := yaml.YAMLToJSON(b)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"configMap":{"name":"`+cm.Metadata.Name+`"}`, "the overlay's ConfigMap")
	s, err := config.Load(append([]string{"-config", p.configPath}, c.Args[2:]...),
		func(k string) string { return secretStandIns[k] }, &bytes.Buffer{})
	require.NoError(t, err, "its flags load")
	assert.True(t, s.Migrate)
	assert.Equal(t, p.s.StoreDSN, s.StoreDSN, "the replicas' store")
}
