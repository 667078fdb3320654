package listener

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

// meshGateway is the gateway name VirtualServices use for sidecars.
const meshGateway = "mesh"

// listenerProtocol is how a listener handles a port (Istio's ListenerProtocol).
type listenerProtocol int

const (
	lpUnknown listenerProtocol = iota // UDP: no listener
	lpHTTP
	lpTCP
	lpAuto // undeclared: sniffed
)

func listenerProtocolOf(p model.Protocol) listenerProtocol {
	switch {
	case p.IsHTTP():
		return lpHTTP
	case p.IsTCP():
		return lpTCP
	case p.IsUnsupported():
		return lpAuto
	}
	return lpUnknown
}

// chainOpts is one outbound filter chain before it becomes Envoy config:
// its match criteria and either an HCM or a network filter stack.
type chainOpts struct {
	sniHosts  []string
	cidrs     []string
	alpn      []string
	transport string
	http      *hcmOpts
	filters   []*listenerv3.Filter
}

// matchAll reports whether the chain matches every connection.
func (c *chainOpts) matchAll() bool {
	return (len(c.sniHosts) == 0 || slices.Contains(c.sniHosts, "*")) &&
		len(c.alpn) == 0 && c.transport == "" && len(c.cidrs) == 0
}

// conflictsWith reports whether two chains have the same match, so the
// second can never be selected.
func (c *chainOpts) conflictsWith(o *chainOpts) bool {
	return c.transport == o.transport &&
		slices.Equal(c.alpn, o.alpn) &&
		slices.Equal(sniSet(c.sniHosts), sniSet(o.sniHosts)) &&
		slices.Equal(cidrSet(c.cidrs), cidrSet(o.cidrs))
}

func sniSet(hosts []string) []string {
	var out []string
	for _, h := range hosts {
		if h != "*" {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func cidrSet(cidrs []string) []string {
	var out []string
	for _, r := range cidrRanges(cidrs) {
		out = append(out, r.GetAddressPrefix()+"/"+r.GetPrefixLen().String())
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// cidrRanges parses addresses and CIDRs (masked), dropping unspecified
// addresses and anything unparsable.
func cidrRanges(cidrs []string) []*corev3.CidrRange {
	var out []*corev3.CidrRange
	for _, s := range cidrs {
		var p netip.Prefix
		if strings.Contains(s, "/") {
			pp, err := netip.ParsePrefix(s)
			if err != nil {
				continue
			}
			p = pp.Masked()
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().IsUnspecified() {
			continue
		}
		out = append(out, &corev3.CidrRange{
			AddressPrefix: p.Addr().String(),
			PrefixLen:     wrapperspb.UInt32(uint32(p.Bits())),
		})
	}
	return out
}

func (c *chainOpts) filterChainMatch() *listenerv3.FilterChainMatch {
	if c.matchAll() {
		return nil
	}
	m := &listenerv3.FilterChainMatch{
		ApplicationProtocols: c.alpn,
		TransportProtocol:    c.transport,
	}
	if len(c.sniHosts) > 0 && !slices.Contains(c.sniHosts, "*") {
		m.ServerNames = append([]string(nil), c.sniHosts...)
		sort.Strings(m.ServerNames)
	}
	if len(c.cidrs) > 0 {
		sorted := append([]string(nil), c.cidrs...)
		sort.Strings(sorted)
		m.PrefixRanges = cidrRanges(sorted)
	}
	return m
}

// outboundKey identifies an outbound listener.
type outboundKey struct {
	bind string
	port uint32
}

// outboundEntry accumulates the chains of one outbound listener.
type outboundEntry struct {
	bind string
	port model.Port
	// protocol is the listener's protocol after merges: a TCP and an HTTP
	// service on one port make it ProtocolUnsupported (sniffed).
	protocol model.Protocol
	host     string // first service, for conflict reports
	chains   []*chainOpts
}

// How an incoming service port meets an existing listener (Istio's names).
type conflictKind int

const (
	noConflict conflictKind = iota
	httpOverTCP
	tcpOverHTTP
	tcpOverTCP
	tcpOverAuto
	autoOverHTTP
	autoOverTCP
)

// outboundListeners builds one listener per bind:port of the visible
// services' ports. Services are visited oldest first, so on a conflict the
// oldest service keeps the listener, as in Istio.
func (b *builder) outboundListeners() []*listenerv3.Listener {
	services := slices.Clone(b.sc.Services)
	sort.SliceStable(services, func(i, j int) bool { return olderService(services[i], services[j]) })

	entries := map[outboundKey]*outboundEntry{}
	var order []outboundKey
	for _, svc := range services {
		for _, port := range svc.Ports {
			if port.Number == b.outboundCapturePort() || port.Number == b.inboundCapturePort() {
				continue // would clash with the capture listeners' addresses
			}
			for _, bind := range b.outboundBinds(svc, port) {
				if k, added := b.addOutbound(entries, svc, port, bind); added {
					order = append(order, k)
				}
			}
		}
	}
	out := make([]*listenerv3.Listener, 0, len(order))
	for _, k := range order {
		out = append(out, b.outboundListener(entries[k]))
	}
	return out
}

// outboundBinds returns the explicit binds of a service port: "" (let the
// protocol decide) except for headless TCP services (resolution NONE, no
// address), which get one listener per endpoint IP so that each instance is
// reachable by its own address. Such a service without endpoints falls back
// to the wildcard unless it selects workloads (endpoints may yet appear).
func (b *builder) outboundBinds(svc *model.Service, port model.Port) []string {
	if svc.Resolution != model.Passthrough || serviceAddress(svc) != "" ||
		!(port.Protocol.IsTCP() || port.Protocol.IsUnsupported()) {
		return []string{""}
	}
	eps := b.snap.Endpoints(svc.Key())
	if len(eps) == 0 {
		if len(svc.Selector) == 0 {
			return []string{""}
		}
		return nil
	}
	// Skip the proxy's own instances: it reaches itself directly, and its
	// inbound side already owns those addresses. (Istio skips the proxy's
	// first IP; its instances are the same addresses, and they are part of
	// the generator cache key while the IPs are not.)
	seen := map[string]bool{}
	for _, in := range b.snap.ProxyInstances(b.proxy) {
		seen[in.Endpoint.Address] = true
	}
	var out []string
	for _, ep := range eps {
		a, err := netip.ParseAddr(ep.Address)
		if err != nil || seen[ep.Address] || seen[a.String()] {
			continue
		}
		seen[a.String()] = true
		out = append(out, a.String())
	}
	return out
}

// serviceAddress is the address outbound TCP listeners bind for a service:
// its first address ("" if none). A /32 or /128 CIDR is an address.
func serviceAddress(svc *model.Service) string {
	if len(svc.Addresses) == 0 {
		return ""
	}
	a := svc.Addresses[0]
	if p, err := netip.ParsePrefix(a); err == nil && p.IsSingleIP() {
		return p.Addr().String()
	}
	return a
}

// addOutbound adds a service port to the listener it belongs on, merging or
// rejecting it when the listener exists (Istio's buildSidecarOutboundListener).
// It reports the key and whether a new listener was created.
func (b *builder) addOutbound(entries map[outboundKey]*outboundEntry, svc *model.Service, port model.Port, bind string) (outboundKey, bool) {
	lp := listenerProtocolOf(port.Protocol)
	var cidr string
	switch lp {
	case lpTCP, lpAuto:
		if bind == "" {
			switch addr := serviceAddress(svc); {
			case addr == "":
				bind = b.wildcard
			case strings.Contains(addr, "/"):
				// A CIDR: listen on the wildcard, match the range per chain.
				bind, cidr = b.wildcard, addr
			default:
				bind = addr
			}
		}
	case lpHTTP:
		if bind == "" {
			bind = b.wildcard
		}
	default:
		return outboundKey{}, false // UDP is not proxied
	}
	key := outboundKey{bind: bind, port: port.Number}
	cur := entries[key]

	listenerProto := port.Protocol
	kind := noConflict
	var opts []*chainOpts
	switch lp {
	case lpHTTP:
		if cur != nil {
			if !cur.protocol.IsTCP() {
				return key, false // HTTP services share the listener through RDS
			}
			kind = httpOverTCP
		}
		h := b.outboundHTTPChain(svc, port, bind, lp)
		if bind == b.wildcard {
			// Non-HTTP traffic to the port passes through (or to a TCP
			// service on the same port): the listener sniffs.
			h.alpn, h.transport = httpALPNs(), transportRawBuffer
			listenerProto = model.ProtocolUnsupported
		}
		opts = []*chainOpts{h}
	case lpTCP:
		opts = b.outboundTCPChains(svc, port, bind, cidr)
		if cur != nil {
			switch {
			case cur.protocol.IsHTTP():
				kind = tcpOverHTTP
			case cur.protocol.IsTCP():
				kind = tcpOverTCP
			default:
				kind = tcpOverAuto
			}
		}
	case lpAuto:
		if cur != nil {
			switch {
			case cur.protocol.IsHTTP():
				kind = autoOverHTTP
			case cur.protocol.IsTCP():
				kind = autoOverTCP
			default:
				return key, false // already sniffed
			}
		}
		h := b.outboundHTTPChain(svc, port, bind, lp)
		h.alpn, h.transport = httpALPNs(), transportRawBuffer
		opts = append(b.outboundTCPChains(svc, port, bind, cidr), h)
	}

	// Server-first protocols cannot share a port with anything sniffed.
	if cur != nil && wellKnownPortConflict(port.Protocol, cur.protocol) {
		b.outboundConflict(cur, svc, port)
		return key, false
	}
	switch kind {
	case noConflict, autoOverHTTP:
		entries[key] = &outboundEntry{bind: bind, port: port, protocol: listenerProto, host: svc.Hostname, chains: opts}
		return key, cur == nil
	case httpOverTCP, tcpOverHTTP, autoOverTCP:
		b.mergeChains(cur, opts, svc, port)
		cur.protocol = model.ProtocolUnsupported
	case tcpOverTCP, tcpOverAuto:
		b.mergeChains(cur, opts, svc, port)
	}
	return key, false
}

// wellKnownPortConflict: Mongo and MySQL (server-first) never share a port
// with another protocol.
func wellKnownPortConflict(incoming, existing model.Protocol) bool {
	serverFirst := func(p model.Protocol) bool { return p == model.ProtocolMongo || p == model.ProtocolMySQL }
	return (serverFirst(incoming) || serverFirst(existing)) && incoming != existing
}

// mergeChains appends the chains whose match differs from every existing
// chain; a chain with an identical match is a conflict the older service wins.
func (b *builder) mergeChains(cur *outboundEntry, incoming []*chainOpts, svc *model.Service, port model.Port) {
	for _, in := range incoming {
		dup := false
		for _, ex := range cur.chains {
			if ex.conflictsWith(in) {
				dup = true
				break
			}
		}
		if dup {
			b.outboundConflict(cur, svc, port)
			continue
		}
		cur.chains = append(cur.chains, in)
	}
}

func (b *builder) outboundConflict(cur *outboundEntry, svc *model.Service, port model.Port) {
	b.conflicts = append(b.conflicts, Conflict{
		Listener:         Name(cur.bind, cur.port.Number),
		Direction:        model.Outbound,
		Accepted:         cur.host,
		Rejected:         svc.Hostname,
		AcceptedProtocol: cur.port.Protocol,
		RejectedProtocol: port.Protocol,
	})
}

// outboundHTTPChain routes through RDS: the shared per-port route config,
// or for a sniffed port on a VIP, a route config of its own service.
func (b *builder) outboundHTTPChain(svc *model.Service, port model.Port, bind string, lp listenerProtocol) *chainOpts {
	rds := RouteName(port.Number)
	if lp == lpAuto && bind != b.wildcard {
		rds = SniffedRouteName(svc.Hostname, port.Number)
	}
	return &chainOpts{http: &hcmOpts{class: classOutbound, rds: rds, protocol: port.Protocol}}
}

// outboundTCPChains builds the chains of a TCP-proxied port: by SNI from
// VirtualService tls routes for TLS ports, by destination subnet from tcp
// routes otherwise, else straight to the service's cluster.
func (b *builder) outboundTCPChains(svc *model.Service, port model.Port, bind, cidr string) []*chainOpts {
	var cidrs []string
	if cidr != "" {
		cidrs = []string{cidr}
	}
	vss := b.virtualServicesFor(svc.Hostname)
	if port.Protocol.IsTLS() {
		return b.outboundTLSChains(svc, port, bind, cidrs, vss)
	}
	return b.outboundTCPRouteChains(svc, port, cidrs, vss)
}

// virtualServicesFor returns the visible VirtualServices with a host that
// covers host, oldest first.
func (b *builder) virtualServicesFor(host string) []config.Config {
	var out []config.Config
	for _, c := range b.sc.VirtualServices {
		for _, h := range c.Spec.(*networking.VirtualService).GetHosts() {
			if model.HostMatches(b.snap.ResolveHost(h, c.Namespace), host) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// matchL4 evaluates the static parts of a tcp/tls route match for this
// proxy: gateways, source labels, port, source namespace. SNI and
// destination subnets are left to the proxy (filter chain match).
func (b *builder) matchL4(gateways []string, sourceLabels map[string]string, port uint32, sourceNamespace string, listenPort uint32) bool {
	if len(gateways) > 0 && !slices.Contains(gateways, meshGateway) {
		return false
	}
	if !model.LabelsMatch(sourceLabels, b.proxy.Labels) {
		return false
	}
	if port != 0 && port != listenPort {
		return false
	}
	return sourceNamespace == "" || sourceNamespace == b.proxy.Namespace
}

// outboundTLSChains: one chain per distinct (sniHosts, destinationSubnets)
// of the matching tls routes; without any, one chain to the service, matched
// by its host name as SNI when the listener cannot tell services apart by
// address (wildcard or CIDR).
func (b *builder) outboundTLSChains(svc *model.Service, port model.Port, bind string, cidrs []string, vss []config.Config) []*chainOpts {
	var out []*chainOpts
	handled := map[string]bool{}
	for _, vs := range vss {
		for _, tls := range vs.Spec.(*networking.VirtualService).GetTls() {
			if len(tls.GetRoute()) == 0 {
				continue
			}
			for _, m := range tls.GetMatch() {
				if !b.matchL4(m.GetGateways(), m.GetSourceLabels(), m.GetPort(), m.GetSourceNamespace(), port.Number) {
					continue
				}
				key := strings.Join(m.GetSniHosts(), ",") + "|" + strings.Join(m.GetDestinationSubnets(), ",")
				if handled[key] {
					continue // an earlier match with the same runtime predicates wins
				}
				handled[key] = true
				chainCIDRs := cidrs
				if len(m.GetDestinationSubnets()) > 0 {
					chainCIDRs = m.GetDestinationSubnets()
				}
				out = append(out, &chainOpts{
					sniHosts: m.GetSniHosts(),
					cidrs:    chainCIDRs,
					filters:  b.routeTCPFilters(tls.GetRoute(), port.Number, vs),
				})
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	var sni []string
	addr := serviceAddress(svc)
	if len(cidrs) > 0 || strings.Contains(addr, "/") || (addr == "" && bind == b.wildcard) {
		sni = []string{svc.Hostname}
	}
	return []*chainOpts{{sniHosts: sni, cidrs: cidrs, filters: b.serviceTCPFilters(svc, port.Number)}}
}

// outboundTCPRouteChains follows the matching tcp routes in order: a route
// whose match has no destination subnet (or no match) ends the list as the
// catch-all; routes with subnets get chains matched by prefix ranges. If no
// catch-all route matched, the service's own cluster is the catch-all.
func (b *builder) outboundTCPRouteChains(svc *model.Service, port model.Port, cidrs []string, vss []config.Config) []*chainOpts {
	var out []*chainOpts
	for _, vs := range vss {
		for _, tcp := range vs.Spec.(*networking.VirtualService).GetTcp() {
			if len(tcp.GetRoute()) == 0 {
				continue
			}
			if len(tcp.GetMatch()) == 0 {
				return append(out, &chainOpts{cidrs: cidrs, filters: b.routeTCPFilters(tcp.GetRoute(), port.Number, vs)})
			}
			var subnets []string
			for _, m := range tcp.GetMatch() {
				if !b.matchL4(m.GetGateways(), m.GetSourceLabels(), m.GetPort(), m.GetSourceNamespace(), port.Number) {
					continue
				}
				if len(m.GetDestinationSubnets()) == 0 {
					return append(out, &chainOpts{cidrs: cidrs, filters: b.routeTCPFilters(tcp.GetRoute(), port.Number, vs)})
				}
				subnets = append(subnets, m.GetDestinationSubnets()...)
			}
			if len(subnets) > 0 {
				out = append(out, &chainOpts{cidrs: subnets, filters: b.routeTCPFilters(tcp.GetRoute(), port.Number, vs)})
				if slices.Equal(cidrSet(subnets), cidrSet(cidrs)) && len(cidrs) > 0 {
					// Same match as the service's own chain would have.
					return out
				}
			}
		}
	}
	return append(out, &chainOpts{cidrs: cidrs, filters: b.serviceTCPFilters(svc, port.Number)})
}

// outboundListener turns an entry into a listener that does not bind
// (virtualOutbound hands it connections). A chain matching everything
// becomes the default chain; without one, unmatched traffic takes the
// catch-all (PassthroughFilterChain).
func (b *builder) outboundListener(e *outboundEntry) *listenerv3.Listener {
	name := Name(e.bind, e.port.Number)
	l := &listenerv3.Listener{
		Name:                             name,
		Address:                          socketAddress(e.bind, e.port.Number),
		BindToPort:                       wrapperspb.Bool(false),
		TrafficDirection:                 corev3.TrafficDirection_OUTBOUND,
		ContinueOnListenerFiltersTimeout: true,
	}
	var needTLS, needHTTP bool
	for _, c := range e.chains {
		needTLS = needTLS || len(c.sniHosts) > 0
		needHTTP = needHTTP || len(c.alpn) > 0
	}
	// A TLS inspector also goes with the HTTP one: an ALPN match without it
	// would make Envoy inject one itself.
	if needTLS || needHTTP {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspectorListenerFilter())
	}
	if needHTTP {
		l.ListenerFilters = append(l.ListenerFilters, httpInspectorListenerFilter())
		l.ListenerFiltersTimeout = b.protocolDetectionTimeout()
	} else {
		l.ListenerFiltersTimeout = durationpb.New(0)
	}
	for _, c := range e.chains {
		fc := &listenerv3.FilterChain{}
		if c.http != nil {
			o := *c.http
			o.statPrefix = "outbound_" + name
			fc.Filters = b.hcmFilter(o)
		} else {
			fc.Filters = c.filters
		}
		if c.matchAll() {
			l.DefaultFilterChain = fc
			continue
		}
		fc.FilterChainMatch = c.filterChainMatch()
		l.FilterChains = append(l.FilterChains, fc)
	}
	switch {
	case l.DefaultFilterChain != nil && len(l.FilterChains) == 0:
		l.FilterChains, l.DefaultFilterChain = []*listenerv3.FilterChain{l.DefaultFilterChain}, nil
	case l.DefaultFilterChain == nil:
		l.DefaultFilterChain = &listenerv3.FilterChain{
			Name:             PassthroughFilterChain,
			FilterChainMatch: &listenerv3.FilterChainMatch{},
			Filters:          b.catchAllFilters(),
		}
	}
	return l
}
