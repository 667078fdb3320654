package listener

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// inboundChain is one inbound port of the proxy: the service port that
// claimed the endpoint's target port first.
type inboundChain struct {
	host string
	port model.Port
	// targetPort is the workload port; 0 for the catch-all passthrough
	// chains (per-port passthrough chains carry their port).
	targetPort uint32
	cluster    string
	// passthrough marks the built-in chains for traffic to ports no service
	// declares.
	passthrough bool
	// bind is the address in the chain's name and, for bindToPort chains,
	// the listener's address ("": the wildcard). Sidecar ingress only.
	bind string
	// bindToPort: the chain forms a listener of its own bound at
	// bind:targetPort (Sidecar ingress with captureMode NONE) instead of
	// being a chain of virtualInbound (listener_ingress.go).
	bindToPort bool
	// sidecar is the Sidecar resource the chain comes from, recorded in
	// the chain's metadata as Istio does (nil for service ports).
	sidecar *config.Config
}

// name is the filter chain name: "<bind>_<targetPort>" (bind defaults to
// the wildcard), or Istio's fixed names for passthrough chains.
func (c inboundChain) name(b *builder, http bool) string {
	if c.passthrough {
		if http {
			return VirtualInboundCatchAllHTTPChain
		}
		return VirtualInboundListenerName
	}
	if c.bind != "" {
		return Name(c.bind, c.targetPort)
	}
	return Name(b.wildcard, c.targetPort)
}

// virtualInboundListener is the listener iptables redirects inbound traffic
// to: a blackhole chain for 15006 itself, passthrough chains for ports no
// service declares, then the chains of each inbound port by target port.
func (b *builder) virtualInboundListener() *listenerv3.Listener {
	port := b.inboundCapturePort()
	chains := []*listenerv3.FilterChain{{
		Name:             VirtualInboundBlackholeChain,
		FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)},
		Filters:          b.tcpNetworkFilters(b.tcpProxy(BlackHoleCluster, BlackHoleCluster)),
	}}
	served := b.inboundChains()
	for _, port := range b.passthroughPorts(served) {
		passthrough := inboundChain{
			port:        model.Port{Name: VirtualInboundListenerName, Protocol: model.ProtocolUnsupported},
			targetPort:  port,
			cluster:     InboundPassthroughCluster,
			passthrough: true,
		}
		chains = append(chains, b.inboundFilterChains(passthrough)...)
	}
	for _, c := range served {
		if c.bindToPort {
			continue // a listener of its own (ingressListeners)
		}
		chains = append(chains, b.inboundFilterChains(c)...)
	}
	return &listenerv3.Listener{
		Name:                             VirtualInboundListenerName,
		Address:                          socketAddress(b.wildcard, port),
		ListenerFilters:                  inboundListenerFilters(chains),
		ListenerFiltersTimeout:           b.protocolDetectionTimeout(),
		ContinueOnListenerFiltersTimeout: true,
		FilterChains:                     chains,
		TrafficDirection:                 corev3.TrafficDirection_INBOUND,
		Transparent:                      b.transparent(),
	}
}

// inboundChains are the proxy's inbound ports: its Sidecar's ingress
// listeners when it declares any (listener_ingress.go; the services'
// ports are then ignored, as in Istio), else one per service target port.
// Memoized: the virtual inbound listener and the ingress listeners share
// them.
func (b *builder) inboundChains() []inboundChain {
	if b.inbound == nil {
		if ing := b.sidecarIngress(); len(ing) > 0 {
			b.inbound = b.ingressChains(ing)
		} else {
			b.inbound = b.serviceInboundChains()
		}
	}
	return b.inbound
}

// serviceInboundChains collects the proxy's inbound ports from the service
// instances at its addresses: one per endpoint target port, the oldest
// service (then host name) winning, sorted by target port.
func (b *builder) serviceInboundChains() []inboundChain {
	instances := b.snap.ProxyInstances(b.proxy)
	sorted := make([]model.ServiceInstance, len(instances))
	copy(sorted, instances)
	sort.SliceStable(sorted, func(i, j int) bool {
		return olderService(sorted[i].Service, sorted[j].Service)
	})
	byPort := map[uint32]inboundChain{}
	for _, inst := range sorted {
		for _, p := range inst.Service.Ports {
			target := inst.Endpoint.PortFor(p)
			if target == b.inboundCapturePort() || target == b.outboundCapturePort() {
				// Would duplicate the blackhole chain's match (or loop).
				continue
			}
			c := inboundChain{
				host:       inst.Service.Hostname,
				port:       p,
				targetPort: target,
				cluster:    InboundRouteName(target),
			}
			if old, ok := byPort[target]; ok {
				// Same port from two services: keep the first. Only a
				// protocol mismatch between different services is a conflict.
				if old.port.Protocol != p.Protocol && old.host != c.host {
					b.conflicts = append(b.conflicts, Conflict{
						Listener:         Name(b.wildcard, target),
						Direction:        model.Inbound,
						Accepted:         old.host,
						Rejected:         c.host,
						AcceptedProtocol: old.port.Protocol,
						RejectedProtocol: p.Protocol,
					})
				}
				continue
			}
			byPort[target] = c
		}
	}
	out := make([]inboundChain, 0, len(byPort))
	for _, c := range byPort {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].targetPort < out[j].targetPort })
	return out
}

// inboundFilterChains builds the filter chains of one inbound port.
func (b *builder) inboundFilterChains(c inboundChain) []*listenerv3.FilterChain {
	mode := b.inboundTLSMode(c.targetPort)
	opts := inboundMatchOptions(mode, listenerProtocolOf(c.port.Protocol))
	out := make([]*listenerv3.FilterChain, 0, len(opts))
	for _, opt := range opts {
		match := &listenerv3.FilterChainMatch{
			TransportProtocol:    opt.transport,
			ApplicationProtocols: opt.alpn,
		}
		if c.targetPort > 0 {
			match.DestinationPort = wrapperspb.UInt32(c.targetPort)
		}
		fc := &listenerv3.FilterChain{
			Name:             c.name(b, opt.http),
			FilterChainMatch: match,
			TransportSocket:  b.downstreamTransportSocket(mode, opt),
			Metadata:         configMetadata(c.sidecar),
		}
		if opt.http {
			fc.Filters = b.hcmFilter(b.inboundHCMOpts(c))
		} else {
			statPrefix := c.cluster
			fc.Filters = b.inboundTCPFilters(b.tcpProxy(statPrefix, c.cluster))
		}
		out = append(out, fc)
	}
	return out
}

// inboundHCMOpts: service ports use RDS ("inbound|<port>||"); the
// passthrough chain inlines a route to InboundPassthroughCluster, as Istio.
func (b *builder) inboundHCMOpts(c inboundChain) hcmOpts {
	o := hcmOpts{class: classInbound, protocol: c.port.Protocol}
	if c.passthrough {
		o.statPrefix = c.cluster
		o.routeConfig = inboundPassthroughRoute(c.cluster)
		return o
	}
	o.statPrefix = "inbound_" + c.name(b, true)
	o.rds = InboundRouteName(c.targetPort)
	return o
}

// inboundPassthroughRoute sends every request to the passthrough cluster,
// without timeouts (the application enforces its own).
func inboundPassthroughRoute(cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: cluster,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "inbound|http|0",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Name:  "default",
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
					Timeout:          durationpb.New(0),
					MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{
						MaxStreamDuration:    durationpb.New(0),
						GrpcTimeoutHeaderMax: durationpb.New(0),
					},
				}},
			}},
		}},
		ValidateClusters: wrapperspb.Bool(false),
	}
}

// olderService orders services as Istio resolves conflicts: creation time,
// then host name, then namespace.
func olderService(a, b *model.Service) bool {
	if !a.CreationTimestamp.Equal(b.CreationTimestamp) {
		return a.CreationTimestamp.Before(b.CreationTimestamp)
	}
	if a.Hostname != b.Hostname {
		return a.Hostname < b.Hostname
	}
	return a.Namespace < b.Namespace
}
