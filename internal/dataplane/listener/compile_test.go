package listener

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func anyOf(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCompileErrors checks that what Envoy rejects, or what we cannot
// honour, is rejected with a message naming the listener and the part.
func TestCompileErrors(t *testing.T) {
	base := func() *listenerv3.Listener {
		return &listenerv3.Listener{
			Name:         "l",
			Address:      socketAddress("0.0.0.0", 8080),
			FilterChains: []*listenerv3.FilterChain{chain("a", nil)},
		}
	}
	tests := []struct {
		name string
		mod  func(*listenerv3.Listener)
		want string
	}{
		{"no name", func(l *listenerv3.Listener) { l.Name = "" }, `listener "": name is required`},
		{"no address", func(l *listenerv3.Listener) { l.Address = nil }, "address is required"},
		{"pipe address", func(l *listenerv3.Listener) {
			l.Address = &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/tmp/x"}}}
		}, "only socket_address"},
		{"hostname address", func(l *listenerv3.Listener) { l.Address = socketAddress("localhost", 80) }, `"localhost" is not an IP address`},
		{"UDP", func(l *listenerv3.Listener) {
			l.Address.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
		}, "protocol UDP is not supported"},
		{"no chains", func(l *listenerv3.Listener) { l.FilterChains = nil }, "no filter chains specified"},
		{"same matching rules", func(l *listenerv3.Listener) {
			l.FilterChains = []*listenerv3.FilterChain{chain("a", &FCM{DestinationPort: port(80)}), chain("b", &FCM{DestinationPort: port(80)})}
		}, `filter chain 1 ("b") has the same matching rules defined as 0 ("a")`},
		{"overlapping rules", func(l *listenerv3.Listener) {
			l.FilterChains = []*listenerv3.FilterChain{
				chain("a", &FCM{ServerNames: []string{"a.example.com", "b.example.com"}}),
				chain("b", &FCM{ServerNames: []string{"b.example.com"}}),
			}
		}, `filter chain 1 ("b"): multiple filter chains with overlapping matching rules are defined`},
		{"overlapping after case folding", func(l *listenerv3.Listener) {
			l.FilterChains = []*listenerv3.FilterChain{
				chain("a", &FCM{ServerNames: []string{"A.example.com"}}),
				chain("b", &FCM{ServerNames: []string{"a.example.com"}}),
			}
		}, "overlapping matching rules"},
		{"overlapping after masking", func(l *listenerv3.Listener) {
			l.FilterChains = []*listenerv3.FilterChain{
				chain("a", &FCM{PrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.0.0.1", PrefixLen: wrapperspb.UInt32(8)}}}),
				chain("b", &FCM{PrefixRanges: []*corev3.CidrRange{cidr("10.0.0.0/8")}}),
			}
		}, "overlapping matching rules"},
		{"partial wildcard", func(l *listenerv3.Listener) {
			l.FilterChains = []*listenerv3.FilterChain{chain("a", &FCM{ServerNames: []string{"api*.example.com"}})}
		}, `partial wildcards are not supported ("api*.example.com")`},
		{"bad CIDR", func(l *listenerv3.Listener) {
			l.FilterChains = []*listenerv3.FilterChain{chain("a", &FCM{SourcePrefixRanges: []*corev3.CidrRange{{AddressPrefix: "10.0.0.x"}}})}
		}, `source_prefix_ranges[0]: malformed IP address "10.0.0.x"`},
		{"suffix", func(l *listenerv3.Listener) {
			l.FilterChains = []*listenerv3.FilterChain{chain("a", &FCM{AddressSuffix: "x"})}
		}, "address_suffix and suffix_len are not implemented"},
		{"network filter fails", func(l *listenerv3.Listener) {
			l.FilterChains[0].Filters = []*listenerv3.Filter{namedFilter("fail")}
		}, `filter chain 0 ("a"): network filter 0 ("fail"): bad config`},
		{"terminal filter not last", func(l *listenerv3.Listener) {
			l.FilterChains[0].Filters = []*listenerv3.Filter{namedFilter("x"), namedFilter("y")}
		}, `network filter 0 ("x") is a terminal filter but is not the last in the chain`},
		{"non-terminal filter last", func(l *listenerv3.Listener) {
			l.FilterChains[0].Filters = []*listenerv3.Filter{namedFilter("wrapper")}
		}, `network filter 0 ("wrapper") is not a terminal filter but is the last in the chain`},
		{"TLS without typed_config", func(l *listenerv3.Listener) {
			l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls"}
		}, `transport_socket "envoy.transport_sockets.tls": typed_config is required`},
		{"TLS with an unknown cipher", func(l *listenerv3.Listener) {
			l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf(t, &tlsv3.DownstreamTlsContext{
				CommonTlsContext: &tlsv3.CommonTlsContext{
					TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
					TlsParams:                      &tlsv3.TlsParameters{CipherSuites: []string{"RC4-MD5"}},
				},
			})}}
		}, `DownstreamTlsContext: common_tls_context: tls_params: cipher_suites: [0]: unknown or unsupported cipher suite "RC4-MD5"`},
		{"unknown transport socket", func(l *listenerv3.Listener) {
			l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.alts"}
		}, `transport_socket "envoy.transport_sockets.alts": unsupported transport socket`},
		{"default chain", func(l *listenerv3.Listener) {
			l.DefaultFilterChain = &listenerv3.FilterChain{Filters: []*listenerv3.Filter{namedFilter("fail")}}
		}, `default_filter_chain: network filter 0 ("fail"): bad config`},
		{"unknown listener filter", func(l *listenerv3.Listener) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "proxy_protocol", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &emptypb.Empty{})}}}
		}, `listener filter 0 ("proxy_protocol"): unsupported listener filter type "type.googleapis.com/google.protobuf.Empty"`},
		{"max_client_hello_size", func(l *listenerv3.Listener) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "tls", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf(t, &tlsinspectorv3.TlsInspector{MaxClientHelloSize: wrapperspb.UInt32(20000)})}}}
		}, "max_client_hello_size of 20000 is greater than maximum of 16384"},
		{"bad predicate", func(l *listenerv3.Listener) {
			l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: TLSInspectorFilterName, FilterDisabled: &listenerv3.ListenerFilterChainMatchPredicate{}}}
		}, "filter_disabled: predicate has no rule"},
		{"negative timeout", func(l *listenerv3.Listener) { l.ListenerFiltersTimeout = durationpb.New(-time.Second) }, "listener_filters_timeout"},
		{"additional addresses", func(l *listenerv3.Listener) {
			l.AdditionalAddresses = []*listenerv3.AdditionalAddress{{Address: socketAddress("::", 8080)}}
		}, "additional_addresses are not supported"},
		{"api listener", func(l *listenerv3.Listener) { l.ApiListener = &listenerv3.ApiListener{} }, "api_listener is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := base()
			tc.mod(l)
			_, err := Compile(l, labelFilters{})
			if err == nil {
				t.Fatal("compiled")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\n does not contain %q", err, tc.want)
			}
			if l.GetName() != "" && !strings.HasPrefix(err.Error(), `listener "l": `) {
				t.Errorf("error %q does not name the listener", err)
			}
		})
	}
}

func TestCompileDefaults(t *testing.T) {
	l := mustCompile(t, &listenerv3.Listener{
		Name:           "vo",
		Address:        socketAddress("0.0.0.0", 15001),
		UseOriginalDst: wrapperspb.Bool(true),
		FilterChains:   []*listenerv3.FilterChain{{Name: "empty"}},
	})
	if !l.BindToPort() || !l.UseOriginalDst() || l.Address() != ap("0.0.0.0:15001") {
		t.Errorf("bind=%v uod=%v addr=%v", l.BindToPort(), l.UseOriginalDst(), l.Address())
	}
	if l.filtersTimeout != DefaultListenerFiltersTimeout || l.continueOnTimeout {
		t.Errorf("timeout %v continue %v, want Envoy's 15s/false", l.filtersTimeout, l.continueOnTimeout)
	}
	// use_original_dst without the filter gets it.
	if len(l.filters) != 1 || l.filters[0].kind != kindOriginalDst {
		t.Errorf("filters %+v, want original_dst added", l.filters)
	}
	// A chain without filters compiles; its connections are closed.
	if c := l.Match(MatchInput{Destination: ap("10.0.0.1:80")}); c == nil || c.Handler() != nil || c.Name() != "empty" {
		t.Errorf("chain %+v", c)
	}
	// Named listener filters without typed_config; 0s disables the timeout.
	l = mustCompile(t, &listenerv3.Listener{
		Name:                   "x",
		Address:                socketAddress("::", 80),
		BindToPort:             wrapperspb.Bool(false),
		ListenerFilters:        []*listenerv3.ListenerFilter{{Name: TLSInspectorFilterName}, {Name: HTTPInspectorFilterName}},
		ListenerFiltersTimeout: durationpb.New(0),
		DefaultFilterChain:     chain("d", nil),
	})
	if l.BindToPort() || l.filtersTimeout != 0 || len(l.filters) != 2 || l.filters[0].maxClientHello != maxClientHelloSize {
		t.Errorf("bind=%v timeout=%v filters=%+v", l.BindToPort(), l.filtersTimeout, l.filters)
	}
}
