package listener

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/model"
)

// Listener filter names (Envoy's well-known names).
const (
	originalDstFilter   = "envoy.filters.listener.original_dst"
	tlsInspectorFilter  = "envoy.filters.listener.tls_inspector"
	httpInspectorFilter = "envoy.filters.listener.http_inspector"
)

// Transport protocols set by the TLS inspector (or Envoy's default).
const (
	transportRawBuffer = "raw_buffer"
	transportTLS       = "tls"
)

// httpALPNs are what the HTTP inspector reports for cleartext HTTP. Like
// Istio, http/1.0 is left out (HTTP/1.0 support is off), so such requests
// are proxied as TCP instead of being rejected.
func httpALPNs() []string { return []string{"http/1.1", "h2c"} }

// virtualOutboundListener is the listener iptables redirects outbound
// traffic to. It hands connections to the listener of their original
// destination (use_original_dst); what matches none goes to the catch-all
// chain: PassthroughCluster (ALLOW_ANY) or BlackHoleCluster (REGISTRY_ONLY).
func (b *builder) virtualOutboundListener() *listenerv3.Listener {
	port := b.outboundCapturePort()
	return &listenerv3.Listener{
		Name:           VirtualOutboundListenerName,
		Address:        socketAddress(b.wildcard, port),
		UseOriginalDst: wrapperspb.Bool(true),
		// Envoy adds original_dst itself when use_original_dst is set; it is
		// listed so that a proxy need not know that rule.
		ListenerFilters: []*listenerv3.ListenerFilter{originalDstListenerFilter()},
		FilterChains: []*listenerv3.FilterChain{
			{
				Name: VirtualOutboundBlackholeChain,
				// Never pass traffic addressed to 15001 itself back to 15001.
				FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port)},
				Filters:          b.tcpNetworkFilters(b.tcpProxy(BlackHoleCluster, BlackHoleCluster)),
			},
			{
				Name:    PassthroughFilterChain,
				Filters: b.catchAllFilters(),
			},
		},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		Transparent:      b.transparent(),
	}
}

// interceptionTPROXY is the INTERCEPTION_MODE of proxies captured by the
// iptables TPROXY target instead of REDIRECT.
const interceptionTPROXY = "TPROXY"

// transparent is the virtual listeners' transparent field: true when the
// proxy's INTERCEPTION_MODE is TPROXY, whose captured connections arrive
// on an IP_TRANSPARENT socket with their original destination as the
// local address (Istio sets it on virtualOutbound and virtualInbound
// alone). nil otherwise, so the REDIRECT output is unchanged.
func (b *builder) transparent() *wrapperspb.BoolValue {
	if b.proxy.Metadata[model.MetaInterception] == interceptionTPROXY {
		return wrapperspb.Bool(true)
	}
	return nil
}

// catchAllFilters sends unmatched outbound traffic to its original
// destination or drops it, per the outbound traffic policy.
func (b *builder) catchAllFilters() []*listenerv3.Filter {
	cluster := BlackHoleCluster
	if b.sc.OutboundAllowAny() {
		cluster = PassthroughCluster
	}
	return b.tcpNetworkFilters(b.tcpProxy(cluster, cluster))
}

func originalDstListenerFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       originalDstFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&originaldstv3.OriginalDst{})},
	}
}

func tlsInspectorListenerFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       tlsInspectorFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&tlsinspectorv3.TlsInspector{})},
	}
}

func httpInspectorListenerFilter() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       httpInspectorFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: toAny(&httpinspectorv3.HttpInspector{})},
	}
}

// inspectorNeeds records, per destination port of a listener's filter chains
// (0 = chains without a port), whether a chain there matches on TLS or on
// HTTP ALPN and so needs the matching inspector.
type inspectorNeeds map[uint32]struct{ tls, http bool }

func inspectorNeedsOf(chains []*listenerv3.FilterChain) inspectorNeeds {
	needs := inspectorNeeds{}
	for _, fc := range chains {
		m := fc.GetFilterChainMatch()
		port := m.GetDestinationPort().GetValue()
		n := needs[port]
		n.tls = n.tls || m.GetTransportProtocol() == transportTLS
		for _, ap := range m.GetApplicationProtocols() {
			if ap == "http/1.1" || ap == "h2c" {
				n.http = true
			}
		}
		needs[port] = n
	}
	return needs
}

// inboundListenerFilters derives the listener filters of virtualInbound
// from its chains as Istio does: original_dst, then the inspectors.
func inboundListenerFilters(chains []*listenerv3.FilterChain) []*listenerv3.ListenerFilter {
	return append([]*listenerv3.ListenerFilter{originalDstListenerFilter()}, inspectorListenerFilters(chains)...)
}

// inspectorListenerFilters are a TLS inspector and an HTTP inspector, each
// only if some chain needs it and disabled on the ports where no chain
// does (the HTTP inspector must run after the TLS one). Listeners bound to
// their own port (Sidecar ingress) have these alone: no original_dst.
func inspectorListenerFilters(chains []*listenerv3.FilterChain) []*listenerv3.ListenerFilter {
	var out []*listenerv3.ListenerFilter
	needs := inspectorNeedsOf(chains)
	var anyTLS, anyHTTP bool
	for _, n := range needs {
		anyTLS = anyTLS || n.tls
		anyHTTP = anyHTTP || n.http
	}
	if anyTLS {
		f := tlsInspectorListenerFilter()
		if needs[0].tls {
			// On for every port: switch it off where nothing needs it.
			f.FilterDisabled = portsPredicate(needs.portsWhere(func(tls, _ bool) bool { return !tls }))
		} else if on := needs.portsWhere(func(tls, _ bool) bool { return tls }); len(on) > 0 {
			f.FilterDisabled = notPredicate(portsPredicate(on))
		}
		out = append(out, f)
	}
	if anyHTTP {
		f := httpInspectorListenerFilter()
		// The passthrough chains (port 0) always sniff, so the inspector is
		// on by default and switched off where no chain needs it.
		f.FilterDisabled = portsPredicate(needs.portsWhere(func(_, http bool) bool { return !http }))
		out = append(out, f)
	}
	return out
}

// portsWhere returns the non-zero ports whose needs satisfy keep, sorted.
func (n inspectorNeeds) portsWhere(keep func(tls, http bool) bool) []uint32 {
	var out []uint32
	for p, v := range n {
		if p != 0 && keep(v.tls, v.http) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// portsPredicate matches connections to any of ports (nil for none).
func portsPredicate(ports []uint32) *listenerv3.ListenerFilterChainMatchPredicate {
	if len(ports) == 0 {
		return nil
	}
	rules := make([]*listenerv3.ListenerFilterChainMatchPredicate, 0, len(ports))
	for _, p := range ports {
		rules = append(rules, &listenerv3.ListenerFilterChainMatchPredicate{
			Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{
				// [start, end)
				DestinationPortRange: &typev3.Int32Range{Start: int32(p), End: int32(p) + 1},
			},
		})
	}
	if len(rules) == 1 {
		return rules[0]
	}
	return &listenerv3.ListenerFilterChainMatchPredicate{
		Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{
			OrMatch: &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: rules},
		},
	}
}

func notPredicate(p *listenerv3.ListenerFilterChainMatchPredicate) *listenerv3.ListenerFilterChainMatchPredicate {
	return &listenerv3.ListenerFilterChainMatchPredicate{
		Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: p},
	}
}
