package listener

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// FCM keeps the tables short.
type FCM = listenerv3.FilterChainMatch

// TestChainMatchPrecedence checks each level of Envoy's FilterChainMatch
// algorithm and the order of the levels, on small listeners.
func TestChainMatchPrecedence(t *testing.T) {
	const (
		dst     = "10.0.0.1:8080"
		src     = "192.168.1.5:40000"
		noChain = ""
	)
	type probe struct {
		name string
		in   MatchInput
		want string // chain label; "" for no chain
	}
	in := func(mod func(*MatchInput)) MatchInput {
		m := MatchInput{Destination: ap(dst), Source: ap(src), Transport: TransportRawBuffer}
		if mod != nil {
			mod(&m)
		}
		return m
	}
	tests := []struct {
		name   string
		chains []*listenerv3.FilterChain
		dflt   bool
		probes []probe
	}{
		{
			name: "destination port: exact beats any; an exact port without a match does not fall back to port 0",
			chains: []*listenerv3.FilterChain{
				chain("any-port", nil),
				chain("port-8080-tls", &FCM{DestinationPort: port(8080), TransportProtocol: "tls"}),
				chain("port-9090", &FCM{DestinationPort: port(9090)}),
			},
			dflt: true,
			probes: []probe{
				{"8080 tls", in(func(m *MatchInput) { m.Transport = TransportTLS }), "port-8080-tls"},
				{"8080 raw: default, not port 0", in(nil), "default"},
				{"9090", in(func(m *MatchInput) { m.Destination = ap("10.0.0.1:9090") }), "port-9090"},
				{"7070: port 0", in(func(m *MatchInput) { m.Destination = ap("10.0.0.1:7070") }), "any-port"},
			},
		},
		{
			name: "destination port checked before destination IP",
			chains: []*listenerv3.FilterChain{
				chain("ip-32", &FCM{PrefixRanges: []*corev3.CidrRange{cidr("10.0.0.1/32")}}),
				chain("port", &FCM{DestinationPort: port(8080)}),
			},
			probes: []probe{
				{"port wins over a /32", in(nil), "port"},
				{"other port: ip", in(func(m *MatchInput) { m.Destination = ap("10.0.0.1:1") }), "ip-32"},
			},
		},
		{
			name: "destination IP: longest prefix, no fallback to a shorter one",
			chains: []*listenerv3.FilterChain{
				chain("any-ip", nil),
				chain("net-16", &FCM{PrefixRanges: []*corev3.CidrRange{cidr("10.0.0.0/16")}}),
				chain("host-32-sni", &FCM{PrefixRanges: []*corev3.CidrRange{cidr("10.0.0.1/32")}, ServerNames: []string{"a.example.com"}}),
				chain("v6", &FCM{PrefixRanges: []*corev3.CidrRange{cidr("fd00::/8")}}),
			},
			probes: []probe{
				{"/32 with its SNI", in(func(m *MatchInput) { m.SNI = "a.example.com" }), "host-32-sni"},
				{"/32 without the SNI: nothing (no fallback to /16)", in(nil), noChain},
				{"/16", in(func(m *MatchInput) { m.Destination = ap("10.0.9.9:8080") }), "net-16"},
				{"outside: any", in(func(m *MatchInput) { m.Destination = ap("10.1.0.1:8080") }), "any-ip"},
				{"IPv6 /8", in(func(m *MatchInput) { m.Destination = ap("[fd00::1]:8080") }), "v6"},
				{"IPv6 outside: ::/0", in(func(m *MatchInput) { m.Destination = ap("[2001:db8::1]:8080") }), "any-ip"},
				{"IPv4-mapped IPv6 is IPv4", in(func(m *MatchInput) { m.Destination = ap("[::ffff:10.0.9.9]:8080") }), "net-16"},
			},
		},
		{
			name: "server names: exact, then the longest wildcard, then none",
			chains: []*listenerv3.FilterChain{
				chain("exact", &FCM{ServerNames: []string{"WWW.Example.com"}}),
				chain("wild-example", &FCM{ServerNames: []string{"*.example.com"}}),
				chain("wild-b-example", &FCM{ServerNames: []string{"*.b.example.com"}}),
				chain("wild-com", &FCM{ServerNames: []string{"*.com"}}),
				chain("no-sni-tls", &FCM{TransportProtocol: "tls"}),
			},
			probes: []probe{
				{"exact (config lower-cased)", in(func(m *MatchInput) { m.SNI = "www.example.com" }), "exact"},
				{"one label", in(func(m *MatchInput) { m.SNI = "api.example.com" }), "wild-example"},
				{"longest wildcard", in(func(m *MatchInput) { m.SNI = "a.b.example.com" }), "wild-b-example"},
				{"deep name, shorter wildcard", in(func(m *MatchInput) { m.SNI = "x.y.example.com" }), "wild-example"},
				{"apex is not its own wildcard", in(func(m *MatchInput) { m.SNI = "example.com" }), "wild-com"},
				{"other TLD falls to catch-all", in(func(m *MatchInput) { m.SNI = "example.org"; m.Transport = TransportTLS }), "no-sni-tls"},
				{"exact SNI, any transport", in(func(m *MatchInput) { m.SNI = "www.example.com"; m.Transport = "" }), "exact"},
				{"no SNI, raw: catch-all exists but wants tls", in(nil), noChain},
			},
		},
		{
			name: "server names before transport: an SNI match never falls back to the catch-all",
			chains: []*listenerv3.FilterChain{
				chain("sni-raw", &FCM{ServerNames: []string{"a.example.com"}, TransportProtocol: "raw_buffer"}),
				chain("tls", &FCM{TransportProtocol: "tls"}),
			},
			dflt: true,
			probes: []probe{
				{"sni + tls: sni subtree has no tls: default", in(func(m *MatchInput) { m.SNI = "a.example.com"; m.Transport = TransportTLS }), "default"},
				{"other sni + tls", in(func(m *MatchInput) { m.SNI = "b.example.com"; m.Transport = TransportTLS }), "tls"},
			},
		},
		{
			name: "transport: exact, then any",
			chains: []*listenerv3.FilterChain{
				chain("tls", &FCM{TransportProtocol: "tls"}),
				chain("any", &FCM{}),
			},
			probes: []probe{
				{"tls", in(func(m *MatchInput) { m.Transport = TransportTLS }), "tls"},
				{"raw", in(nil), "any"},
			},
		},
		{
			name: "application protocols: the client's order decides, then any",
			chains: []*listenerv3.FilterChain{
				chain("h2", &FCM{ApplicationProtocols: []string{"h2"}}),
				chain("http1", &FCM{ApplicationProtocols: []string{"http/1.1", "http/1.0"}}),
				chain("any", &FCM{}),
			},
			probes: []probe{
				{"h2 first", in(func(m *MatchInput) { m.ALPN = []string{"h2", "http/1.1"} }), "h2"},
				{"http/1.1 first", in(func(m *MatchInput) { m.ALPN = []string{"http/1.1", "h2"} }), "http1"},
				{"unknown then h2", in(func(m *MatchInput) { m.ALPN = []string{"spdy/3", "h2"} }), "h2"},
				{"none", in(nil), "any"},
			},
		},
		{
			name: "transport before application protocols",
			chains: []*listenerv3.FilterChain{
				chain("raw-http", &FCM{TransportProtocol: "raw_buffer", ApplicationProtocols: []string{"http/1.1", "h2c"}}),
				chain("any-transport-tcp", &FCM{}),
			},
			probes: []probe{
				{"raw http", in(func(m *MatchInput) { m.ALPN = []string{"http/1.1"} }), "raw-http"},
				{"raw non-http: the raw_buffer subtree has no catch-all", in(nil), noChain},
				{"tls", in(func(m *MatchInput) { m.Transport = TransportTLS }), "any-transport-tcp"},
			},
		},
		{
			name: "direct source, source type, source prefix, source port",
			chains: []*listenerv3.FilterChain{
				chain("direct-10", &FCM{DirectSourcePrefixRanges: []*corev3.CidrRange{cidr("10.9.0.0/16")}}),
				chain("local", &FCM{SourceType: listenerv3.FilterChainMatch_SAME_IP_OR_LOOPBACK}),
				chain("src-24", &FCM{SourcePrefixRanges: []*corev3.CidrRange{cidr("192.168.1.0/24")}}),
				chain("src-24-port", &FCM{SourcePrefixRanges: []*corev3.CidrRange{cidr("192.168.1.0/24")}, SourcePorts: []uint32{40000}}),
				chain("any", &FCM{SourcePrefixRanges: []*corev3.CidrRange{cidr("0.0.0.0/0")}}),
			},
			probes: []probe{
				{"direct source first", in(func(m *MatchInput) { m.Source = ap("10.9.1.1:1") }), "direct-10"},
				{"loopback is local", in(func(m *MatchInput) { m.Source = ap("127.0.0.1:1") }), "local"},
				{"same IP is local", in(func(m *MatchInput) { m.Source = ap("10.0.0.1:1") }), "local"},
				{"source port exact", in(nil), "src-24-port"},
				{"source port any", in(func(m *MatchInput) { m.Source = ap("192.168.1.5:1") }), "src-24"},
				{"other source", in(func(m *MatchInput) { m.Source = ap("172.16.0.1:1") }), "any"},
			},
		},
		{
			name: "source type: external, then any",
			chains: []*listenerv3.FilterChain{
				chain("external", &FCM{SourceType: listenerv3.FilterChainMatch_EXTERNAL}),
				chain("any", &FCM{SourcePorts: []uint32{1}}),
			},
			probes: []probe{
				{"external", in(nil), "external"},
				{"local: no local entry, any", in(func(m *MatchInput) { m.Source = ap("127.0.0.1:1") }), "any"},
				{"local, other port: any has only port 1", in(func(m *MatchInput) { m.Source = ap("127.0.0.1:2") }), noChain},
			},
		},
		{
			name: "no chain and no default",
			chains: []*listenerv3.FilterChain{
				chain("tls-only", &FCM{TransportProtocol: "tls"}),
			},
			probes: []probe{{"raw", in(nil), noChain}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &listenerv3.Listener{Name: "l", Address: socketAddress("0.0.0.0", 8080), FilterChains: tc.chains}
			if tc.dflt {
				l.DefaultFilterChain = chain("default", nil)
			}
			c := mustCompile(t, l)
			for _, p := range tc.probes {
				if got := labelOf(c.Match(p.in)); got != p.want {
					t.Errorf("%s: got chain %q, want %q", p.name, got, p.want)
				}
			}
		})
	}
}

func TestPredicate(t *testing.T) {
	rng := func(lo, hi int32) *listenerv3.ListenerFilterChainMatchPredicate {
		return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_DestinationPortRange{DestinationPortRange: &typev3.Int32Range{Start: lo, End: hi}}}
	}
	set := func(and bool, rules ...*listenerv3.ListenerFilterChainMatchPredicate) *listenerv3.ListenerFilterChainMatchPredicate {
		ms := &listenerv3.ListenerFilterChainMatchPredicate_MatchSet{Rules: rules}
		if and {
			return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_AndMatch{AndMatch: ms}}
		}
		return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_OrMatch{OrMatch: ms}}
	}
	not := func(p *listenerv3.ListenerFilterChainMatchPredicate) *listenerv3.ListenerFilterChainMatchPredicate {
		return &listenerv3.ListenerFilterChainMatchPredicate{Rule: &listenerv3.ListenerFilterChainMatchPredicate_NotMatch{NotMatch: p}}
	}
	p, err := compilePredicate(set(false, rng(80, 81), set(true, rng(9000, 9100), not(rng(9050, 9051)))), 0)
	if err != nil {
		t.Fatal(err)
	}
	for port, want := range map[uint16]bool{80: true, 81: false, 9000: true, 9050: false, 9099: true, 9100: false} {
		if got := p.matches(port); got != want {
			t.Errorf("port %d: got %v, want %v", port, got, want)
		}
	}
	if _, err := compilePredicate(set(false, rng(1, 2)), 0); err == nil {
		t.Error("a one-rule set compiled")
	}
	deep := rng(1, 2)
	for range maxPredicateDepth + 2 {
		deep = not(deep)
	}
	if _, err := compilePredicate(deep, 0); err == nil {
		t.Error("an over-deep predicate compiled")
	}
}
