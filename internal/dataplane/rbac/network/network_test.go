package network

import (
	"context"
	"net"
	"net/netip"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
)

func filterOf(t *testing.T, js string) *listenerv3.Filter {
	t.Helper()
	r := &rbacv3.RBAC{}
	if err := protojson.Unmarshal([]byte(js), r); err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(r)
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.rbac", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

type next struct{ served *bool }

func (n next) Serve(context.Context, *listener.Conn) { *n.served = true }

func TestServe(t *testing.T) {
	const cfg = `{"statPrefix":"tcp.","rules":{"action":"ALLOW","policies":{"p":{"permissions":[{"destinationPort":9000}],` +
		`"principals":[{"authenticated":{"principalName":{"exact":"spiffe://td/ns/a/sa/b"}}}]}}},` +
		`"shadowRules":{"action":"DENY","policies":{"s":{"permissions":[{"any":true}],"principals":[{"any":true}]}}},"shadowRulesStatPrefix":"istio_dry_run_deny_"}`
	stats := &rbac.Counters{}
	h, err := Filters{Stats: stats}.Build(filterOf(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		identity string
		port     uint16
		want     bool
	}{
		{"allowed", "spiffe://td/ns/a/sa/b", 9000, true},
		{"other port", "spiffe://td/ns/a/sa/b", 9001, false},
		{"other identity", "spiffe://td/ns/a/sa/bb", 9000, false},
		{"plaintext", "", 9000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			served := false
			w := h.(listener.Wrapper).Wrap(next{&served})
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			w.Serve(context.Background(), &listener.Conn{Conn: a, Destination: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), tc.port),
				MutualTLS: tc.identity != "", PeerIdentity: tc.identity})
			if served != tc.want {
				t.Errorf("served=%v, want %v", served, tc.want)
			}
		})
	}
	if stats.Get("tcp.rbac.allowed") != 1 || stats.Get("tcp.rbac.denied") != 3 || stats.Get("tcp.rbac.istio_dry_run_deny_.shadow_denied") != 4 {
		t.Errorf("counters: %v allowed=%d denied=%d shadow=%d", stats.Names(), stats.Get("tcp.rbac.allowed"), stats.Get("tcp.rbac.denied"), stats.Get("tcp.rbac.istio_dry_run_deny_.shadow_denied"))
	}
}

func TestBuildRejects(t *testing.T) {
	for name, js := range map[string]string{
		"no stat prefix": `{"rules":{}}`,
		"delay deny":     `{"statPrefix":"x","delayDeny":"1s"}`,
		"bad rule":       `{"statPrefix":"x","rules":{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"filterState":{"key":"k","stringMatch":{"exact":"v"}}}]}}}}`,
	} {
		if _, err := (Filters{}).Build(filterOf(t, js)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
