package listener

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

const tcpProxyFilter = "envoy.filters.network.tcp_proxy"

// tcpProxy builds a tcp_proxy to one cluster.
func (b *builder) tcpProxy(statPrefix, cluster string) *tcpv3.TcpProxy {
	return &tcpv3.TcpProxy{
		StatPrefix:       statPrefix,
		ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster},
		AccessLog:        b.accessLogs(),
	}
}

// tcpNetworkFilters is the network filter stack ending in a tcp_proxy.
// It is the seam for TCP-level filters that go before the proxy (RBAC, TCP
// stats, metadata exchange); today the stack is the proxy alone.
func (b *builder) tcpNetworkFilters(tp *tcpv3.TcpProxy) []*listenerv3.Filter {
	return []*listenerv3.Filter{{
		Name:       tcpProxyFilter,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(tp)},
	}}
}

// outboundCluster builds the cluster of an outbound destination:
// outbound|<port>|<subset>|<host>. The port is the destination's, else the
// service's only port, else the listener port (Istio's GetDestinationCluster).
func (b *builder) outboundCluster(d *networking.Destination, vsNamespace string, listenPort uint32) (string, *model.Service) {
	host := b.snap.ResolveHost(d.GetHost(), vsNamespace)
	svc, _ := b.sc.Service(host)
	port := listenPort
	switch {
	case d.GetPort().GetNumber() != 0:
		port = d.GetPort().GetNumber()
	case svc != nil && len(svc.Ports) == 1:
		port = svc.Ports[0].Number
	}
	return model.ClusterName(model.Outbound, port, d.GetSubset(), host), svc
}

// serviceTCPFilters proxies a service port to its default cluster. A
// service's only port is used when the listener port differs (Sidecar
// egress ports), as Istio does.
func (b *builder) serviceTCPFilters(svc *model.Service, listenPort uint32) []*listenerv3.Filter {
	port := listenPort
	if len(svc.Ports) == 1 {
		port = svc.Ports[0].Number
	}
	cluster := model.ClusterName(model.Outbound, port, "", svc.Hostname)
	tp := b.tcpProxy(cluster, cluster)
	b.applyDestinationRule(tp, svc.Hostname, "")
	return b.tcpNetworkFilters(tp)
}

// routeTCPFilters proxies to the destinations of a VirtualService tcp or tls
// route: one cluster, or weighted clusters with the VirtualService as stat
// prefix ("<name>.<namespace>"). Destinations with weight 0 are left out of
// a weighted split.
func (b *builder) routeTCPFilters(routes []*networking.RouteDestination, listenPort uint32, vs config.Config) []*listenerv3.Filter {
	first, svc := b.outboundCluster(routes[0].GetDestination(), vs.Namespace, listenPort)
	host := ""
	if svc != nil {
		host = svc.Hostname
	}
	if len(routes) == 1 {
		tp := b.tcpProxy(first, first)
		b.applyDestinationRule(tp, host, routes[0].GetDestination().GetSubset())
		return b.tcpNetworkFilters(tp)
	}
	weighted := &tcpv3.TcpProxy_WeightedCluster{}
	for _, r := range routes {
		if r.GetWeight() <= 0 {
			continue
		}
		name, _ := b.outboundCluster(r.GetDestination(), vs.Namespace, listenPort)
		weighted.Clusters = append(weighted.Clusters, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{
			Name:   name,
			Weight: uint32(r.GetWeight()),
		})
	}
	if len(weighted.Clusters) == 0 {
		// Validation requires weights on split routes; without any, keep the
		// first destination rather than emit an empty split.
		tp := b.tcpProxy(first, first)
		b.applyDestinationRule(tp, host, routes[0].GetDestination().GetSubset())
		return b.tcpNetworkFilters(tp)
	}
	tp := &tcpv3.TcpProxy{
		StatPrefix:       vs.Name + "." + vs.Namespace,
		ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: weighted},
		AccessLog:        b.accessLogs(),
	}
	b.applyDestinationRule(tp, host, "")
	return b.tcpNetworkFilters(tp)
}

// applyDestinationRule copies the TCP settings of the host's DestinationRule
// that live on the listener side: idle timeout, max connection duration, and
// source-IP consistent hashing.
func (b *builder) applyDestinationRule(tp *tcpv3.TcpProxy, host, subset string) {
	if host == "" {
		return
	}
	c, ok := b.sc.DestinationRule(host)
	if !ok {
		return
	}
	dr := c.Spec.(*networking.DestinationRule)
	tcp := dr.GetTrafficPolicy().GetConnectionPool().GetTcp()
	tp.IdleTimeout = tcp.GetIdleTimeout()
	tp.MaxDownstreamConnectionDuration = tcp.GetMaxConnectionDuration()

	useSourceIP := dr.GetTrafficPolicy().GetLoadBalancer().GetConsistentHash().GetUseSourceIp()
	for _, ss := range dr.GetSubsets() {
		if ss.GetName() != subset {
			continue
		}
		if lb := ss.GetTrafficPolicy().GetLoadBalancer(); lb != nil {
			useSourceIP = lb.GetConsistentHash().GetUseSourceIp()
		}
		break
	}
	if useSourceIP {
		tp.HashPolicy = []*typev3.HashPolicy{{
			PolicySpecifier: &typev3.HashPolicy_SourceIp_{SourceIp: &typev3.HashPolicy_SourceIp{}},
		}}
	}
}
