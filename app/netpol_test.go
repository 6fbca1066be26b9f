package app

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// networkPolicy is the part of a NetworkPolicy the tests read.
type networkPolicy struct {
	Spec struct {
		PodSelector labelSelector `json:"podSelector"`
		PolicyTypes []string      `json:"policyTypes"`
		Ingress     []struct {
			From []struct {
				PodSelector       *labelSelector `json:"podSelector"`
				NamespaceSelector *labelSelector `json:"namespaceSelector"`
				IPBlock           any            `json:"ipBlock"`
			} `json:"from"`
			Ports []struct {
				Port     any    `json:"port"`
				Protocol string `json:"protocol"`
			} `json:"ports"`
		} `json:"ingress"`
	} `json:"spec"`
}

// In each overlay a NetworkPolicy guards the pods' ingress. It
// admits the service's ports (addr's and admin_addr's) and nothing else,
// and only from the namespace's own pods and from namespaces labelled for
// it: never from every namespace, nor from an address block, where the
// world would be. The tokens the admin
// API and the tasks need come from optional Secrets.
func TestDeployNetworkPolicyAdmitsOnlyTheServicePortFromTheNamespace(t *testing.T) {
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			m := render(t, overlay)
			p := loadPod(t, m)
			var np networkPolicy
			m.one(t, "NetworkPolicy", &np)
			assert.True(t, selects(t, np.Spec.PodSelector, p.d.Spec.Template.Metadata.Labels), "the policy selects the pods")
			assert.Contains(t, np.Spec.PolicyTypes, "Ingress")

			names := map[string]bool{}
			ports := map[string]bool{}
			for _, addr := range []string{p.s.Addr, p.s.AdminAddr} {
				_, port, err := net.SplitHostPort(addr)
				require.NoError(t, err)
				ports[port] = true
				for _, cp := range p.c.Ports {
					if strconv.Itoa(cp.ContainerPort) == port {
						names[cp.Name] = true
					}
				}
			}
			require.NotEmpty(t, np.Spec.Ingress, "an Ingress policy without rules would admit nothing, the probes' node aside")
			for i, rule := range np.Spec.Ingress {
				require.NotEmpty(t, rule.Ports, "rule %d names its ports: without, it admits every port", i)
				for _, rp := range rule.Ports {
					switch v := rp.Port.(type) {
					case string:
						assert.True(t, names[v], "rule %d admits port %q, which is not the service's (%s)", i, v, p.s.Addr)
					case float64:
						assert.True(t, ports[strconv.Itoa(int(v))], "rule %d admits a port that is not the service's", i)
					default:
						t.Errorf("rule %d: port %v (%T)", i, rp.Port, rp.Port)
					}
					assert.Contains(t, []string{"", "TCP"}, rp.Protocol)
				}
				require.NotEmpty(t, rule.From, "rule %d names its peers: without, it admits everyone", i)
				for j, peer := range rule.From {
					assert.Nil(t, peer.IPBlock, "rule %d peer %d: an address block admits what is outside the cluster", i, j)
					if peer.NamespaceSelector != nil {
						assert.NotEmpty(t, peer.NamespaceSelector.MatchLabels, "rule %d peer %d: an empty namespaceSelector admits every namespace", i, j)
						assert.Empty(t, peer.NamespaceSelector.MatchExpressions)
					} else {
						assert.NotNil(t, peer.PodSelector, "rule %d peer %d names pods or labelled namespaces", i, j)
					}
				}
			}

			var svc struct {
				Spec struct {
					Ports []struct {
						TargetPort string `json:"targetPort"`
					} `json:"ports"`
				} `json:"spec"`
			}
			m.one(t, "Service", &svc)
			for _, sp := range svc.Spec.Ports {
				assert.True(t, names[sp.TargetPort], "the Service's target %q is the port the policy admits", sp.TargetPort)
			}

			for name, secret := range map[string]string{"GLEITZEIT_ADMIN_TOKEN": "gleitzeit-admin", "GLEITZEIT_TASK_TOKEN": "gleitzeit-tasks"} {
				e, ok := p.env(name)
				require.True(t, ok, "the Deployment sets %s", name)
				require.NotNil(t, e.ValueFrom, "%s comes from a Secret, never a literal", name)
				require.NotNil(t, e.ValueFrom.SecretKeyRef)
				assert.Equal(t, secret, e.ValueFrom.SecretKeyRef.Name)
				assert.True(t, e.ValueFrom.SecretKeyRef.Optional, "without the Secret %s the pod still starts", secret)
			}
			assert.Equal(t, "t4sk", p.s.TaskToken, "the task token reaches the service's settings")
		})
	}
}

// checkAdminPort checks, in an overlay's pod, that admin_addr is set
// beyond loopback to the container port named admin, apart from addr's
// port named http, and that Prometheus' annotations scrape /metrics there.
func checkAdminPort(t *testing.T, p pod) {
	t.Helper()
	require.NotEmpty(t, p.s.AdminAddr, "the pod serves the admin API on a port of its own")
	assert.False(t, strings.HasPrefix(p.s.AdminAddr, "127."), "the admin port listens beyond loopback")
	named := map[string]string{}
	for _, cp := range p.c.Ports {
		named[cp.Name] = strconv.Itoa(cp.ContainerPort)
	}
	for name, addr := range map[string]string{"http": p.s.Addr, "admin": p.s.AdminAddr} {
		_, port, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		assert.Equal(t, port, named[name], "the container port %q is where the service listens (%s)", name, addr)
	}
	assert.NotEqual(t, named["http"], named["admin"])

	ann := p.d.Spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] == "true" {
		assert.Equal(t, named["admin"], ann["prometheus.io/port"], "Prometheus scrapes the admin port, the only one serving /metrics")
		assert.Equal(t, "/metrics", ann["prometheus.io/path"])
	}
}

// peer is where a connection to the pods comes from: a pod with labels in
// a namespace with labels, the service's own or another.
type peer struct {
	name       string
	ownNS      bool
	podLabels  map[string]string
	nsLabels   map[string]string
	wantAdmits []string // the port names the policy should admit from it
}

// matches reports whether a NetworkPolicy selector picks these labels:
// an empty selector picks all.
func matches(sel *labelSelector, labels map[string]string) bool {
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	return len(sel.MatchExpressions) == 0
}

// admits is what a NetworkPolicy admits from a peer: the port names of the
// rules one of whose peers matches it, as Kubernetes reads them (a
// podSelector alone: pods of the policy's namespace; a namespaceSelector
// alone: every pod of those namespaces; both: those pods of those
// namespaces).
func (np networkPolicy) admits(from peer) []string {
	var ports []string
	for _, rule := range np.Spec.Ingress {
		in := false
		for _, f := range rule.From {
			switch {
			case f.IPBlock != nil:
			case f.NamespaceSelector == nil && f.PodSelector != nil:
				in = in || from.ownNS && matches(f.PodSelector, from.podLabels)
			case f.NamespaceSelector != nil:
				in = in || matches(f.NamespaceSelector, from.nsLabels) &&
					(f.PodSelector == nil || matches(f.PodSelector, from.podLabels))
			}
		}
		if in {
			for _, rp := range rule.Ports {
				if name, ok := rp.Port.(string); ok && !slices.Contains(ports, name) {
					ports = append(ports, name)
				}
			}
		}
	}
	slices.Sort(ports)
	return ports
}

// The admin port (the admin API and /metrics) is admitted only
// from namespaces labelled gleitzeit.io/admin=true, where the operators'
// tools and Prometheus run; the http port (tasks, probes) from the
// namespace's own pods and namespaces labelled gleitzeit.io/access=true,
// as before. A task client cannot reach the admin API, whichever of the
// two places it runs in.
func TestDeployNetworkPolicyAdmitsTheAdminPortOnlyFromAdminNamespaces(t *testing.T) {
	own := map[string]string{"kubernetes.io/metadata.name": "gleitzeit"}
	client := map[string]string{"app": "client"}
	peers := []peer{
		{name: "a pod of the namespace", ownNS: true, podLabels: client, nsLabels: own, wantAdmits: []string{"http"}},
		{name: "a replica of the service", ownNS: true, podLabels: map[string]string{"app": "gleitzeit"}, nsLabels: own, wantAdmits: []string{"http"}},
		{name: "a pod of a namespace labelled for access", podLabels: client,
			nsLabels: map[string]string{"gleitzeit.io/access": "true"}, wantAdmits: []string{"http"}},
		{name: "Prometheus, in a namespace labelled for admin", podLabels: map[string]string{"app": "prometheus"},
			nsLabels: map[string]string{"gleitzeit.io/admin": "true"}, wantAdmits: []string{"admin"}},
		{name: "a namespace labelled both", podLabels: client,
			nsLabels: map[string]string{"gleitzeit.io/access": "true", "gleitzeit.io/admin": "true"}, wantAdmits: []string{"admin", "http"}},
		{name: "an unlabelled namespace", podLabels: client, nsLabels: map[string]string{"kubernetes.io/metadata.name": "other"}},
	}
	for _, overlay := range overlays {
		t.Run(overlay, func(t *testing.T) {
			m := render(t, overlay)
			p := loadPod(t, m)
			checkAdminPort(t, p)
			var np networkPolicy
			m.one(t, "NetworkPolicy", &np)
			for _, from := range peers {
				assert.Equal(t, from.wantAdmits, np.admits(from), "from %s", from.name)
			}
		})
	}
}
