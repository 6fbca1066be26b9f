package app

import (
	"net"
	"strconv"
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

// Issue 21: in each overlay a NetworkPolicy guards the pods' ingress. It
// admits the service's one port (the tasks, the admin API, the probes and
// /metrics share it) and nothing else, and only from the namespace's own
// pods and from namespaces labelled for it: never from every namespace, nor
// from an address block, where the world would be. The tokens the admin
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

			_, port, err := net.SplitHostPort(p.s.Addr)
			require.NoError(t, err)
			names := map[string]bool{}
			for _, cp := range p.c.Ports {
				if strconv.Itoa(cp.ContainerPort) == port {
					names[cp.Name] = true
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
						assert.Equal(t, port, strconv.Itoa(int(v)), "rule %d admits a port that is not the service's", i)
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
