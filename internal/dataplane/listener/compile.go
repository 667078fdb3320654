package listener

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
)

// ConnHandler serves the connections of a filter chain: the HTTP
// connection manager, tcp_proxy, or a non-terminal filter in front of one.
// Serve owns c until it returns (the listener closes it then) and must
// return promptly once ctx is done: ctx ends when the manager closes or
// when a replaced listener's drain time is over.
type ConnHandler interface {
	Serve(ctx context.Context, c *Conn)
}

// Wrapper is implemented by the handlers of non-terminal network filters
// (RBAC, stats, ...): Wrap returns the handler that runs the filter in
// front of next. Every filter of a chain but the last must be a Wrapper;
// the last must not be.
type Wrapper interface {
	ConnHandler
	Wrap(next ConnHandler) ConnHandler
}

// NetworkFilters builds the handler of one network filter from its
// configuration. An error rejects the listener (a NACK naming the chain
// and the filter).
type NetworkFilters interface {
	Build(filter *listenerv3.Filter) (ConnHandler, error)
}

// Registry is a NetworkFilters that dispatches on the filter's
// typed_config type URL.
type Registry map[string]NetworkFilters

// Build builds filter with the NetworkFilters registered for its type.
func (r Registry) Build(filter *listenerv3.Filter) (ConnHandler, error) {
	if filter.GetConfigDiscovery() != nil {
		return nil, errors.New("config_discovery (ECDS) is not supported")
	}
	tc := filter.GetTypedConfig()
	if tc == nil {
		return nil, errors.New("no typed_config")
	}
	nf, ok := r[tc.GetTypeUrl()]
	if !ok {
		return nil, fmt.Errorf("unsupported network filter type %q", tc.GetTypeUrl())
	}
	return nf.Build(filter)
}

// DefaultListenerFiltersTimeout is Envoy's default listener_filters_timeout.
const DefaultListenerFiltersTimeout = 15 * time.Second

// Listener is a compiled, immutable Listener: its address, listener
// filters and filter chain index. It is safe for concurrent use.
type Listener struct {
	name           string
	addr           netip.AddrPort // zero when the listener has no socket address
	ipv4Compat     bool
	bind           bool
	useOriginalDst bool
	transparent    bool
	direction      corev3.TrafficDirection

	filters           []listenerFilter
	filtersTimeout    time.Duration // 0: none
	continueOnTimeout bool

	chains       []*Chain
	defaultChain *Chain
	tree         *chainTree
}

// Name is the listener's name.
func (l *Listener) Name() string { return l.name }

// Address is the listener's socket address (zero if it has none).
func (l *Listener) Address() netip.AddrPort { return l.addr }

// BindToPort reports whether the listener binds its address (Envoy's
// bind_to_port, default true). Others only receive connections handed
// off by a use_original_dst listener.
func (l *Listener) BindToPort() bool { return l.bind }

// UseOriginalDst reports whether connections whose original destination
// was restored are handed to the listener of that address.
func (l *Listener) UseOriginalDst() bool { return l.useOriginalDst }

// Transparent reports whether the listener's socket is transparent
// (Envoy's transparent: IP_TRANSPARENT, for TPROXY capture). The local
// address of its connections is then their original destination.
func (l *Listener) Transparent() bool { return l.transparent }

// Direction is the listener's traffic_direction.
func (l *Listener) Direction() corev3.TrafficDirection { return l.direction }

// Chains returns the compiled filter chains in configuration order.
func (l *Listener) Chains() []*Chain { return append([]*Chain(nil), l.chains...) }

// DefaultChain is the default_filter_chain, nil if there is none.
func (l *Listener) DefaultChain() *Chain { return l.defaultChain }

// Match selects the filter chain for a connection with Envoy's
// FilterChainMatch algorithm, falling back to the default chain; nil means
// no chain: the connection is closed.
func (l *Listener) Match(in MatchInput) *Chain {
	if c := l.tree.find(&in); c != nil {
		return c
	}
	return l.defaultChain
}

// Compile validates a Listener and builds its filter chains with filters.
// Errors name the listener and the offending part, for the NACK. What
// changes traffic and is not implemented is rejected, never ignored: UDP,
// API and internal listeners, additional addresses, the filter chain
// matcher, FCDS, transport sockets other than raw_buffer and tls, unknown
// listener filters. TLS contexts are compiled by package tlssock; their
// secrets are read per handshake from Config.Secrets.
func Compile(l *listenerv3.Listener, filters NetworkFilters) (*Listener, error) {
	if l == nil {
		return nil, errors.New("listener is nil")
	}
	out, err := compile(l, filters)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.GetName(), err)
	}
	return out, nil
}

func compile(l *listenerv3.Listener, filters NetworkFilters) (*Listener, error) {
	if l.GetName() == "" {
		return nil, errors.New("name is required")
	}
	if filters == nil {
		return nil, errors.New("no network filter builder")
	}
	if err := unsupportedListenerFields(l); err != nil {
		return nil, err
	}
	out := &Listener{
		name:              l.GetName(),
		bind:              l.GetBindToPort() == nil || l.GetBindToPort().GetValue(),
		useOriginalDst:    l.GetUseOriginalDst().GetValue(),
		transparent:       l.GetTransparent().GetValue(),
		direction:         l.GetTrafficDirection(),
		filtersTimeout:    DefaultListenerFiltersTimeout,
		continueOnTimeout: l.GetContinueOnListenerFiltersTimeout(),
		tree:              newChainTree(),
	}
	if err := out.compileAddress(l.GetAddress()); err != nil {
		return nil, err
	}
	if t := l.GetListenerFiltersTimeout(); t != nil {
		if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
			return nil, fmt.Errorf("listener_filters_timeout: invalid duration %v", t)
		}
		out.filtersTimeout = t.AsDuration() // 0 disables it
	}
	if err := out.compileListenerFilters(l); err != nil {
		return nil, err
	}
	if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
		return nil, errors.New("no filter chains specified")
	}
	seen := make(map[string]string, len(l.GetFilterChains()))
	for i, fc := range l.GetFilterChains() {
		c, err := compileChain(fc, i, filters)
		if err != nil {
			return nil, fmt.Errorf("filter chain %s: %w", chainLabel(fc, i), err)
		}
		key, err := proto.MarshalOptions{Deterministic: true}.Marshal(fc.GetFilterChainMatch())
		if err != nil {
			return nil, fmt.Errorf("filter chain %s: %w", chainLabel(fc, i), err)
		}
		if prev, dup := seen[string(key)]; dup {
			return nil, fmt.Errorf("filter chain %s has the same matching rules defined as %s", chainLabel(fc, i), prev)
		}
		seen[string(key)] = chainLabel(fc, i)
		m, err := compileMatch(fc.GetFilterChainMatch())
		if err != nil {
			return nil, fmt.Errorf("filter chain %s: filter_chain_match: %w", chainLabel(fc, i), err)
		}
		if err := out.tree.add(m, c); err != nil {
			return nil, fmt.Errorf("filter chain %s: %w", chainLabel(fc, i), err)
		}
		out.chains = append(out.chains, c)
	}
	if dc := l.GetDefaultFilterChain(); dc != nil {
		c, err := compileChain(dc, -1, filters)
		if err != nil {
			return nil, fmt.Errorf("default_filter_chain: %w", err)
		}
		out.defaultChain = c
	}
	return out, nil
}

func chainLabel(fc *listenerv3.FilterChain, i int) string {
	if fc.GetName() != "" {
		return fmt.Sprintf("%d (%q)", i, fc.GetName())
	}
	return fmt.Sprint(i)
}

// unsupportedListenerFields rejects listener features that would change
// where traffic goes if they were ignored.
func unsupportedListenerFields(l *listenerv3.Listener) error {
	switch {
	case l.GetApiListener() != nil:
		return errors.New("api_listener is not supported")
	case l.GetInternalListener() != nil:
		return errors.New("internal_listener is not supported")
	case l.GetUdpListenerConfig() != nil:
		return errors.New("udp_listener_config is not supported (TCP listeners only)")
	case len(l.GetAdditionalAddresses()) > 0:
		return errors.New("additional_addresses are not supported")
	case l.GetFilterChainMatcher() != nil:
		return errors.New("filter_chain_matcher is not supported (use filter_chain_match)")
	case l.GetFcdsConfig() != nil:
		return errors.New("fcds_config is not supported")
	}
	return nil
}

func (out *Listener) compileAddress(a *corev3.Address) error {
	if a == nil {
		return errors.New("address is required")
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return errors.New("address: only socket_address is supported")
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return fmt.Errorf("address: protocol %s is not supported", sa.GetProtocol())
	}
	if sa.GetResolverName() != "" {
		return fmt.Errorf("address: resolver_name %q is not supported", sa.GetResolverName())
	}
	if _, named := sa.GetPortSpecifier().(*corev3.SocketAddress_NamedPort); named {
		return errors.New("address: named_port is not supported")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil || ip.Zone() != "" {
		return fmt.Errorf("address: %q is not an IP address", sa.GetAddress())
	}
	if sa.GetPortValue() > 65535 {
		return fmt.Errorf("address: port %d is out of range", sa.GetPortValue())
	}
	out.addr = netip.AddrPortFrom(ip.Unmap(), uint16(sa.GetPortValue()))
	out.ipv4Compat = sa.GetIpv4Compat()
	return nil
}

func (out *Listener) compileListenerFilters(l *listenerv3.Listener) error {
	hasOriginalDst := false
	for i, lf := range l.GetListenerFilters() {
		f, err := compileListenerFilter(lf)
		if err != nil {
			return fmt.Errorf("listener filter %d (%q): %w", i, lf.GetName(), err)
		}
		hasOriginalDst = hasOriginalDst || f.kind == kindOriginalDst
		out.filters = append(out.filters, f)
	}
	if out.useOriginalDst && !hasOriginalDst {
		// use_original_dst needs the restored address; put the filter
		// first, where Envoy's legacy behaviour had it.
		out.filters = append([]listenerFilter{{kind: kindOriginalDst, name: OriginalDstFilterName}}, out.filters...)
	}
	return nil
}

// compileChain builds one filter chain's handler: the last network filter
// is the terminal handler, each one before it wraps what follows.
func compileChain(fc *listenerv3.FilterChain, index int, filters NetworkFilters) (*Chain, error) {
	if fc.GetUseProxyProto().GetValue() {
		return nil, errors.New("use_proxy_proto is not supported")
	}
	c := &Chain{name: fc.GetName(), index: index}
	if ts := fc.GetTransportSocket(); ts != nil && !isRawBuffer(ts) {
		if !tlssock.IsTLS(ts) {
			return nil, fmt.Errorf("transport_socket %q: unsupported transport socket (raw_buffer and tls only)", ts.GetName())
		}
		srv, err := tlssock.CompileServer(ts)
		if err != nil {
			return nil, err
		}
		c.tls = srv
	}
	fs := fc.GetFilters()
	handlers := make([]ConnHandler, len(fs))
	for i, f := range fs {
		h, err := filters.Build(f)
		if err != nil {
			return nil, fmt.Errorf("network filter %d (%q): %w", i, f.GetName(), err)
		}
		if h == nil {
			return nil, fmt.Errorf("network filter %d (%q): built no handler", i, f.GetName())
		}
		_, wraps := h.(Wrapper)
		last := i == len(fs)-1
		switch {
		case last && wraps:
			return nil, fmt.Errorf("network filter %d (%q) is not a terminal filter but is the last in the chain", i, f.GetName())
		case !last && !wraps:
			return nil, fmt.Errorf("network filter %d (%q) is a terminal filter but is not the last in the chain", i, f.GetName())
		}
		handlers[i] = h
	}
	if len(handlers) > 0 {
		h := handlers[len(handlers)-1]
		for i := len(handlers) - 2; i >= 0; i-- {
			h = handlers[i].(Wrapper).Wrap(h)
		}
		c.handler = h
		c.parts = handlers
	}
	return c, nil
}

func isRawBuffer(ts *corev3.TransportSocket) bool {
	if tc := ts.GetTypedConfig(); tc != nil {
		return tc.GetTypeUrl() == "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
	}
	return ts.GetName() == "envoy.transport_sockets.raw_buffer"
}
