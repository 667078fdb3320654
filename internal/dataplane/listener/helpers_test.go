package listener

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// labelHandler is a terminal handler that only carries a label describing
// the filter it was built from.
type labelHandler struct{ label string }

func (labelHandler) Serve(context.Context, *Conn) {}

// labelWrapper is a non-terminal handler.
type labelWrapper struct{ labelHandler }

func (w labelWrapper) Wrap(next ConnHandler) ConnHandler { return next }

// labelFilters builds labelHandlers: "tcp:<cluster>" (or
// "tcp:<a>=<w>,...") for tcp_proxy, "hcm:<rds>" or "hcm:inline" for the
// HTTP connection manager, else the filter's name. A filter named
// "wrapper" builds a labelWrapper; one named "fail" fails.
type labelFilters struct{}

func (labelFilters) Build(f *listenerv3.Filter) (ConnHandler, error) {
	switch f.GetName() {
	case "fail":
		return nil, fmt.Errorf("bad config")
	case "wrapper":
		return labelWrapper{labelHandler{"wrapper"}}, nil
	}
	tc := f.GetTypedConfig()
	switch tc.GetTypeUrl() {
	case "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy":
		tp := &tcpv3.TcpProxy{}
		if err := anypb.UnmarshalTo(tc, tp, proto.UnmarshalOptions{}); err != nil {
			return nil, err
		}
		if tp.GetCluster() != "" {
			return labelHandler{"tcp:" + tp.GetCluster()}, nil
		}
		var parts []string
		for _, c := range tp.GetWeightedClusters().GetClusters() {
			parts = append(parts, fmt.Sprintf("%s=%d", c.GetName(), c.GetWeight()))
		}
		return labelHandler{"tcp:" + strings.Join(parts, ",")}, nil
	case "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
		h := &hcmv3.HttpConnectionManager{}
		if err := anypb.UnmarshalTo(tc, h, proto.UnmarshalOptions{}); err != nil {
			return nil, err
		}
		if r := h.GetRds(); r != nil {
			return labelHandler{"hcm:" + r.GetRouteConfigName()}, nil
		}
		return labelHandler{"hcm:inline"}, nil
	}
	return labelHandler{f.GetName()}, nil
}

// labelOf is the label of the handler of c ("" for nil).
func labelOf(c *Chain) string {
	if c == nil {
		return ""
	}
	switch h := c.Handler().(type) {
	case labelHandler:
		return h.label
	case nil:
		return "<no filters>"
	}
	return fmt.Sprintf("%T", c.Handler())
}

// namedFilter is a network filter whose name becomes its label.
func namedFilter(name string) *listenerv3.Filter {
	a, _ := anypb.New(&emptypb.Empty{})
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

// chain is a filter chain with one labelled filter (label = name).
func chain(name string, m *listenerv3.FilterChainMatch) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Name: name, FilterChainMatch: m, Filters: []*listenerv3.Filter{namedFilter(name)}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ip,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func cidr(s string) *corev3.CidrRange {
	p := netip.MustParsePrefix(s)
	return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
}

func port(p uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(p) }

func mustCompile(t testing.TB, l *listenerv3.Listener) *Listener {
	t.Helper()
	c, err := Compile(l, labelFilters{})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
