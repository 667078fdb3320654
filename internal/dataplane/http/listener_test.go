package http_test

import (
	"context"
	"log/slog"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
	genroute "github.com/trellismesh/trellis/internal/xds/gen/route"
)

// TestListenerIntegration serves the generated outbound 9080 listener with
// the real listener manager, the HTTP connection manager registered as its
// network filter, and the route table delivered afterwards, as RDS would.
func TestListenerIntegration(t *testing.T) {
	cfgs := gentest.Files(t, gentest.Bookinfo(), gentest.Sample(t, "bookinfo/networking/destination-rule-all.yaml"), "testdata/mesh.yaml")
	sc := gentest.NewSnapshot(nil, cfgs).Scope(gentest.Proxy("10.0.0.100", "default", map[string]string{"app": "sleep"}))
	var lis *listenerv3.Listener
	for _, l := range genlistener.Build(sc) {
		if l.GetName() == genlistener.Name("0.0.0.0", 9080) {
			lis = proto.Clone(l).(*listenerv3.Listener)
		}
	}
	if lis == nil {
		t.Fatal("no 0.0.0.0_9080 listener")
	}
	lis.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
	}}}
	lis.BindToPort = wrapperspb.Bool(true)

	up := newTestUpstream(t)
	b := newBackend(t, detailsV1)
	up.add(detailsV1, b.addr(), false)
	routes := &hcm.RouteTables{}
	rec := &recorder{}
	tcpb, err := tcp.NewBuilder(tcp.Config{Upstream: &tcp.Direct{}})
	if err != nil {
		t.Fatal(err)
	}
	lm, err := listener.New(listener.Config{
		Filters: listener.Registry{
			hcm.TypeURL: hcm.NetworkFilter{Deps: hcm.Deps{Routes: routes, Upstream: up, Observer: rec}},
			tcp.TypeURL: tcpb,
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lm.Update([]*listenerv3.Listener{lis}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lm.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr, ok := lm.Addr(lis.GetName())
	if !ok {
		t.Fatal("listener not bound")
	}
	p := &proxy{addr: addr.String(), rec: rec}
	c := client(t, false)

	// Before RDS: no route table, 404 NR.
	resp := p.do(t, c, "GET", "details", "/before", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != 404 {
		t.Errorf("before RDS: %d, want 404", resp.StatusCode)
	}
	rcs, err := genroute.BuildWithErrors(sc, []string{"9080"})
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := route.Compile(rcs[0])
	if err != nil {
		t.Fatal(err)
	}
	routes.Set("9080", tbl)
	// The same connection now routes with the new table.
	s := decodeSeen(t, p.do(t, c, "GET", "details", "/after", nil, nil))
	if s.Backend != detailsV1 {
		t.Errorf("after RDS: served by %q", s.Backend)
	}
	r := rec.wait(t, byPath("/after"))
	if r.Listener != lis.GetName() || r.StatPrefix != "outbound_0.0.0.0_9080" {
		t.Errorf("record listener %q stat prefix %q", r.Listener, r.StatPrefix)
	}
}
