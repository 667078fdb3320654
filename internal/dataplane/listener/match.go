package listener

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
)

// MatchInput is what filter chain matching looks at, Envoy's connection
// socket properties once the listener filters have run.
type MatchInput struct {
	// Destination is the local address, restored by original_dst.
	Destination netip.AddrPort
	// Source is the remote address.
	Source netip.AddrPort
	// DirectSource is the remote address of the TCP connection itself
	// (differs from Source only behind a PROXY protocol hop); zero means
	// Source.
	DirectSource netip.AddrPort
	// SNI is the lower-cased TLS server name, "" if none.
	SNI string
	// Transport is "raw_buffer" or "tls".
	Transport string
	// ALPN is the requested application protocols, in the client's order.
	ALPN []string
}

// Chain is one compiled filter chain of a listener.
type Chain struct {
	name  string
	index int // position in filter_chains; -1 for the default chain
	// handler serves the chain's connections; nil when the chain has no
	// network filters (Envoy then closes the connection).
	handler ConnHandler
	// parts are the handlers of each network filter, in order (for
	// Drainer and io.Closer).
	parts []ConnHandler
	// tls terminates TLS before the handler (a tls transport socket);
	// nil for raw_buffer.
	tls *tlssock.Server
}

// TLS reports whether the chain terminates TLS.
func (c *Chain) TLS() bool { return c.tls != nil }

// Name is the filter chain's name ("" if unnamed).
func (c *Chain) Name() string { return c.name }

// Index is the chain's position in the listener's filter_chains, or -1
// for the default_filter_chain.
func (c *Chain) Index() int { return c.index }

// IsDefault reports whether c is the listener's default_filter_chain.
func (c *Chain) IsDefault() bool { return c.index < 0 }

// Handler is the chain's network filter stack, nil if it has none.
func (c *Chain) Handler() ConnHandler { return c.handler }

// chainTree is Envoy's filter chain index (FilterChainManagerImpl): one
// level per FilterChainMatch field, in Envoy's order. At each level the
// most specific entry that exists is taken and there is no backtracking to
// a less specific one when the levels below do not match, except that a
// destination port without a match falls to the default chain (not to
// port 0).
//
//	destination_port ─► prefix_ranges ─► server_names ─► transport_protocol ─►
//	application_protocols ─► direct_source_prefix_ranges ─► source_type ─►
//	source_prefix_ranges ─► source_ports ─► chain
type chainTree struct {
	ports map[uint32]*prefixTable[*sniLevel] // 0: any port
}

type sniLevel struct {
	// "" any; ".example.com" for *.example.com; else exact, lower case.
	names map[string]*transportLevel
}

type transportLevel struct {
	protocols map[string]*alpnLevel // "" any
}

type alpnLevel struct {
	protocols map[string]*prefixTable[*sourceTypeLevel] // "" any; value: direct source ranges
}

type sourceTypeLevel struct {
	byType [3]*prefixTable[map[uint32]*Chain] // indexed by ConnectionSourceType; value: source ports (0 any)
}

func newChainTree() *chainTree {
	return &chainTree{ports: map[uint32]*prefixTable[*sniLevel]{}}
}

// errOverlap is Envoy's "multiple filter chains with overlapping matching
// rules are defined": two chains share a leaf of the index.
var errOverlap = errors.New("multiple filter chains with overlapping matching rules are defined")

// compiledMatch is a FilterChainMatch with its lists expanded and checked.
type compiledMatch struct {
	port         uint32
	destinations []netip.Prefix
	serverNames  []string
	transport    string
	alpn         []string
	directSrc    []netip.Prefix
	sourceType   listenerv3.FilterChainMatch_ConnectionSourceType
	sources      []netip.Prefix
	sourcePorts  []uint32
}

// compileMatch validates a FilterChainMatch as Envoy does when adding a
// listener.
func compileMatch(m *listenerv3.FilterChainMatch) (*compiledMatch, error) {
	if m.GetAddressSuffix() != "" || m.GetSuffixLen() != nil {
		return nil, errors.New("address_suffix and suffix_len are not implemented")
	}
	out := &compiledMatch{
		port:       m.GetDestinationPort().GetValue(),
		transport:  m.GetTransportProtocol(),
		sourceType: m.GetSourceType(),
	}
	if out.port > 65535 {
		return nil, fmt.Errorf("destination_port %d is out of range", out.port)
	}
	if out.sourceType < 0 || int(out.sourceType) >= len(sourceTypeLevel{}.byType) {
		return nil, fmt.Errorf("source_type %d is unknown", out.sourceType)
	}
	var err error
	if out.destinations, err = cidrs("prefix_ranges", m.GetPrefixRanges()); err != nil {
		return nil, err
	}
	if out.directSrc, err = cidrs("direct_source_prefix_ranges", m.GetDirectSourcePrefixRanges()); err != nil {
		return nil, err
	}
	if out.sources, err = cidrs("source_prefix_ranges", m.GetSourcePrefixRanges()); err != nil {
		return nil, err
	}
	out.serverNames = []string{""}
	if names := m.GetServerNames(); len(names) > 0 {
		out.serverNames = make([]string, 0, len(names))
		for _, n := range names {
			if strings.Contains(n, "*") && !strings.HasPrefix(n, "*.") {
				return nil, fmt.Errorf("server_names: partial wildcards are not supported (%q)", n)
			}
			n = strings.ToLower(n)
			if strings.HasPrefix(n, "*.") {
				n = n[1:] // ".example.com"
			}
			out.serverNames = append(out.serverNames, n)
		}
	}
	out.alpn = []string{""}
	if len(m.GetApplicationProtocols()) > 0 {
		out.alpn = m.GetApplicationProtocols()
	}
	out.sourcePorts = []uint32{0}
	if len(m.GetSourcePorts()) > 0 {
		out.sourcePorts = m.GetSourcePorts()
		for _, p := range out.sourcePorts {
			if p == 0 || p > 65535 {
				return nil, fmt.Errorf("source_ports: %d is out of range", p)
			}
		}
	}
	return out, nil
}

// add indexes chain under every combination of m's lists.
func (t *chainTree) add(m *compiledMatch, chain *Chain) error {
	ips := t.ports[m.port]
	if ips == nil {
		ips = newPrefixTable[*sniLevel]()
		t.ports[m.port] = ips
	}
	for _, dst := range m.destinations {
		sni := ips.getOrAdd(dst, func() *sniLevel { return &sniLevel{names: map[string]*transportLevel{}} })
		for _, name := range m.serverNames {
			tl := sni.names[name]
			if tl == nil {
				tl = &transportLevel{protocols: map[string]*alpnLevel{}}
				sni.names[name] = tl
			}
			al := tl.protocols[m.transport]
			if al == nil {
				al = &alpnLevel{protocols: map[string]*prefixTable[*sourceTypeLevel]{}}
				tl.protocols[m.transport] = al
			}
			for _, proto := range m.alpn {
				direct := al.protocols[proto]
				if direct == nil {
					direct = newPrefixTable[*sourceTypeLevel]()
					al.protocols[proto] = direct
				}
				if err := addSources(direct, m, chain); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func addSources(direct *prefixTable[*sourceTypeLevel], m *compiledMatch, chain *Chain) error {
	for _, d := range m.directSrc {
		st := direct.getOrAdd(d, func() *sourceTypeLevel { return &sourceTypeLevel{} })
		srcs := st.byType[m.sourceType]
		if srcs == nil {
			srcs = newPrefixTable[map[uint32]*Chain]()
			st.byType[m.sourceType] = srcs
		}
		for _, s := range m.sources {
			ports := srcs.getOrAdd(s, func() map[uint32]*Chain { return map[uint32]*Chain{} })
			for _, p := range m.sourcePorts {
				if _, dup := ports[p]; dup {
					return errOverlap
				}
				ports[p] = chain
			}
		}
	}
	return nil
}

// find returns the chain for in, or nil; the caller falls back to the
// default chain.
func (t *chainTree) find(in *MatchInput) *Chain {
	if len(t.ports) == 0 {
		return nil
	}
	if ips, ok := t.ports[uint32(in.Destination.Port())]; ok {
		// A port with its own entry never falls back to port 0.
		return findDestination(ips, in)
	}
	if ips, ok := t.ports[0]; ok {
		return findDestination(ips, in)
	}
	return nil
}

func findDestination(ips *prefixTable[*sniLevel], in *MatchInput) *Chain {
	sni, ok := ips.lookup(ipOrFake(in.Destination.Addr()))
	if !ok {
		return nil
	}
	return findServerName(sni, in)
}

func findServerName(l *sniLevel, in *MatchInput) *Chain {
	name := in.SNI
	if tl, ok := l.names[name]; ok {
		return findTransport(tl, in)
	}
	// Wildcards, longest suffix first: ".b.example.com", ".example.com",
	// ".com" for "a.b.example.com"; a name never matches its own
	// wildcard ("example.com" is not in "*.example.com").
	for pos := indexFrom(name, '.', 1); pos >= 0 && pos < len(name)-1; pos = indexFrom(name, '.', pos+1) {
		if tl, ok := l.names[name[pos:]]; ok {
			return findTransport(tl, in)
		}
	}
	if tl, ok := l.names[""]; ok {
		return findTransport(tl, in)
	}
	return nil
}

// ipOrFake stands in 255.255.255.255 for a missing address (a connection
// that is not over IP), which only the catch-all ranges match, as Envoy's
// fakeAddress.
func ipOrFake(a netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// indexFrom is the index of the first c in s at or after from, or -1.
func indexFrom(s string, c byte, from int) int {
	if from >= len(s) {
		return -1
	}
	i := strings.IndexByte(s[from:], c)
	if i < 0 {
		return -1
	}
	return from + i
}

func findTransport(l *transportLevel, in *MatchInput) *Chain {
	if al, ok := l.protocols[in.Transport]; ok {
		return findALPN(al, in)
	}
	if al, ok := l.protocols[""]; ok {
		return findALPN(al, in)
	}
	return nil
}

func findALPN(l *alpnLevel, in *MatchInput) *Chain {
	for _, p := range in.ALPN {
		if p == "" {
			continue
		}
		if direct, ok := l.protocols[p]; ok {
			return findDirectSource(direct, in)
		}
	}
	if direct, ok := l.protocols[""]; ok {
		return findDirectSource(direct, in)
	}
	return nil
}

func findDirectSource(direct *prefixTable[*sourceTypeLevel], in *MatchInput) *Chain {
	src := in.DirectSource
	if !src.IsValid() {
		src = in.Source
	}
	st, ok := direct.lookup(ipOrFake(src.Addr()))
	if !ok {
		return nil
	}
	return findSourceType(st, in)
}

func findSourceType(st *sourceTypeLevel, in *MatchInput) *Chain {
	local := st.byType[listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK]
	external := st.byType[listenerv3.FilterChainMatch_EXTERNAL]
	if local != nil || external != nil {
		if sameIPOrLoopback(in) {
			if local != nil {
				return findSource(local, in)
			}
		} else if external != nil {
			return findSource(external, in)
		}
	}
	if anyType := st.byType[listenerv3.FilterChainMatch_ANY]; anyType != nil {
		return findSource(anyType, in)
	}
	return nil
}

// sameIPOrLoopback is Envoy's isSameIpOrLoopback: the peer is a loopback
// address or has the connection's local IP.
func sameIPOrLoopback(in *MatchInput) bool {
	src := in.Source.Addr().Unmap()
	return src.IsLoopback() || (src.IsValid() && src == in.Destination.Addr().Unmap())
}

func findSource(srcs *prefixTable[map[uint32]*Chain], in *MatchInput) *Chain {
	ports, ok := srcs.lookup(ipOrFake(in.Source.Addr()))
	if !ok {
		return nil
	}
	if c, ok := ports[uint32(in.Source.Port())]; ok {
		return c
	}
	if in.Source.Port() != 0 {
		return ports[0]
	}
	return nil
}
