package children

import (
	"net"
	"net/netip"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	stratv1 "github.com/stratops/stratops/api/v1"
	"github.com/stratops/stratops/pkg/messaging"
)

// NetworkPolicyOptions are the cluster's facts a logger's NetworkPolicy
// needs, which no Strategy can know: the manager's flags.
type NetworkPolicyOptions struct {
	// MetricsCIDRs may reach the health and metrics port: the nodes, whose
	// kubelets probe the logger (a policy cannot name the kubelet).
	MetricsCIDRs []string
	// MetricsNamespaceLabels select the namespaces whose pods may reach the
	// health and metrics port (Prometheus).
	MetricsNamespaceLabels map[string]string
}

// Open reports whether neither is set: the health and metrics port is then
// open to all, so that no kubelet probe is cut off by a policy that cannot
// name it.
func (o NetworkPolicyOptions) Open() bool {
	return len(o.MetricsCIDRs) == 0 && len(o.MetricsNamespaceLabels) == 0
}

// EventLoggerNetworkPolicy confines the logger. In: its API port only from
// the Strategy's engine pods; its health and metrics port from the nodes
// and the metrics namespaces (from anywhere when neither is configured).
// Out: DNS, and Redis (withRedis): a Standalone server's port, at its IP
// when the address is one; for Sentinel and Cluster any TCP port, since
// the servers that discovery returns are not known when the policy is
// written. The engine's traffic is its own business (it talks to
// exchanges): no policy selects it.
func EventLoggerNetworkPolicy(s *stratv1.Strategy, withRedis bool, o NetworkPolicyOptions) *networkingv1ac.NetworkPolicyApplyConfiguration {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p corev1.Protocol, n int) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
		return networkingv1ac.NetworkPolicyPort().WithProtocol(p).WithPort(intstr.FromInt32(int32(n)))
	}
	api := networkingv1ac.NetworkPolicyIngressRule().
		WithPorts(port(tcp, messaging.EventLoggerPort)).
		WithFrom(networkingv1ac.NetworkPolicyPeer().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s, ComponentEngine))))
	health := networkingv1ac.NetworkPolicyIngressRule().WithPorts(port(tcp, messaging.EventLoggerHealthPort))
	for _, c := range o.MetricsCIDRs {
		health.WithFrom(networkingv1ac.NetworkPolicyPeer().WithIPBlock(networkingv1ac.IPBlock().WithCIDR(c)))
	}
	if len(o.MetricsNamespaceLabels) > 0 {
		health.WithFrom(networkingv1ac.NetworkPolicyPeer().
			WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(o.MetricsNamespaceLabels)))
	}

	dns := networkingv1ac.NetworkPolicyEgressRule().WithPorts(port(udp, 53), port(tcp, 53))
	egress := []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration{dns}
	if withRedis && s.Spec.Redis != nil {
		env := RedisEnv(s)
		if env.Topology == "" || env.Topology == string(stratv1.TopologyStandalone) {
			for _, a := range env.Addrs {
				host, p, err := net.SplitHostPort(a)
				n, perr := strconv.Atoi(p)
				if err != nil || perr != nil {
					continue
				}
				rule := networkingv1ac.NetworkPolicyEgressRule().WithPorts(port(tcp, n))
				if ip, err := netip.ParseAddr(host); err == nil {
					rule.WithTo(networkingv1ac.NetworkPolicyPeer().WithIPBlock(
						networkingv1ac.IPBlock().WithCIDR(netip.PrefixFrom(ip, ip.BitLen()).String())))
				}
				egress = append(egress, rule)
			}
		} else {
			egress = append(egress, networkingv1ac.NetworkPolicyEgressRule().
				WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(tcp)))
		}
	}
	return networkingv1ac.NetworkPolicy(EventLoggerName(s), s.Namespace).
		WithLabels(ObjectLabels(s, ComponentEventLogger)).WithOwnerReferences(owner(s)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(SelectorLabels(s, ComponentEventLogger))).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
			WithIngress(api, health).
			WithEgress(egress...))
}
