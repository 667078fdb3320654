package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestNewValidatesConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no generator", Config{}},
		{"negative debounce", Config{Generator: newFakeGen(), Debounce: -1}},
		{"max below debounce", Config{Generator: newFakeGen(), Debounce: time.Second, DebounceMax: time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("want error")
			}
		})
	}
	if _, err := New(Config{Generator: newFakeGen()}); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestHostileStreams(t *testing.T) {
	denied := fmt.Errorf("not on the list")
	h := newHarness(t, Config{
		NodeTimeout:      200 * time.Millisecond,
		MaxResourceNames: 10,
		Authorizer: func(_ context.Context, p *model.Proxy) error {
			if p.Name == "intruder.ns1" {
				return denied
			}
			return nil
		},
	})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	many := make([]string, 11)
	for k := range many {
		many[k] = fmt.Sprint("n", k)
	}
	cases := []struct {
		name string
		req  *discovery.DiscoveryRequest // nil: send nothing
		code codes.Code
	}{
		{"no node", &discovery.DiscoveryRequest{TypeUrl: xds.ClusterType}, codes.InvalidArgument},
		{"malformed node id", &discovery.DiscoveryRequest{Node: &core.Node{Id: "garbage"}, TypeUrl: xds.ClusterType}, codes.InvalidArgument},
		{"never sends a request", nil, codes.DeadlineExceeded},
		{"too many names", &discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.1", "p", "ns1")), TypeUrl: xds.EndpointType, ResourceNames: many}, codes.ResourceExhausted},
		{"not authorized", &discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.1", "intruder", "ns1")), TypeUrl: xds.ClusterType}, codes.PermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.sotw()
			if tc.req != nil {
				c.send(tc.req)
			}
			if err := c.end(); status.Code(err) != tc.code {
				t.Fatalf("stream ended with %v, want %v", err, tc.code)
			}
		})
	}
	// Delta subscriptions accumulate; the cap applies to the total.
	d := h.delta()
	first := dreq(xds.EndpointType, "")
	first.Node = node(sidecarID("10.0.0.1", "p", "ns1"))
	first.ResourceNamesSubscribe = many[:6]
	d.send(first)
	d.recv()
	more := dreq(xds.EndpointType, "")
	more.ResourceNamesSubscribe = many[6:]
	d.send(more)
	if err := d.end(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("delta stream ended with %v, want ResourceExhausted", err)
	}
}

func TestRunStopsStreams(t *testing.T) {
	gen := newFakeGen()
	gen.set("v1", baseWorld("a"))
	srv, err := New(Config{Generator: gen, Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		srv.Run(ctx)
	}()
	srv.Update(snapshot("v1"), PushRequest{Full: true})
	fs := newFakeStream[discovery.DiscoveryRequest, discovery.DiscoveryResponse]()
	defer fs.close()
	served := make(chan error, 1)
	go func() { served <- srv.streamSotw(fs, nil) }()
	fs.in <- &discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.9", "x", "ns1")), TypeUrl: xds.ClusterType}
	if r := <-fs.out; r.GetTypeUrl() != xds.ClusterType {
		t.Fatalf("got %s", r.GetTypeUrl())
	}
	cancel()
	select {
	case <-ran:
	case <-time.After(waitFor):
		t.Fatal("Run did not return")
	}
	if err := <-served; status.Code(err) != codes.Unavailable {
		t.Fatalf("stream ended with %v, want Unavailable", err)
	}
	if n := len(srv.Clients()); n != 0 {
		t.Fatalf("%d clients after Run returned", n)
	}
	// New streams after shutdown are refused.
	fs2 := newFakeStream[discovery.DiscoveryRequest, discovery.DiscoveryResponse]()
	defer fs2.close()
	go func() {
		select {
		case fs2.in <- &discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.9", "x", "ns1")), TypeUrl: xds.ClusterType}:
		case <-fs2.ctx.Done():
		}
	}()
	if err := srv.streamSotw(fs2, nil); status.Code(err) != codes.Unavailable {
		t.Fatalf("stream after shutdown: %v", err)
	}
}

func TestMetricsExposed(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	c := h.sotw()
	got := handshake(t, c, sidecarID("10.0.0.1", "p1", "ns1"))
	d := h.delta()
	first := dreq(xds.ClusterType, "")
	first.Node = node(sidecarID("10.0.0.2", "p2", "ns1"))
	d.send(first)
	d.recv()
	eventually(t, "two proxies connected", func() bool { return metric(t, h.reg, "pilot_xds", nil) == 2 })

	h.update("v2", baseWorld("b"), PushRequest{Full: true})
	r := c.recv()
	nack := ack(r)
	nack.VersionInfo = got[xds.ClusterType].GetVersionInfo()
	nack.ErrorDetail = statusProto("bad")
	c.send(nack)
	for range 3 { // EDS, LDS, RDS of the push: ACKed
		r := c.recv()
		c.send(ack(r, names(t, r)...))
	}
	eventually(t, "reject counted", func() bool {
		return metric(t, h.reg, "pilot_total_xds_rejects", map[string]string{"type": "cds"}) == 1
	})
	eventually(t, "convergence observed", func() bool { return metric(t, h.reg, "pilot_proxy_convergence_time", nil) == 3 })
	for _, name := range []string{"pilot_xds_pushes", "pilot_xds_push_time", "pilot_xds_send_time", "pilot_debounce_time"} {
		if metric(t, h.reg, name, nil) == 0 {
			t.Errorf("%s not recorded", name)
		}
	}
	if n := metric(t, h.reg, "pilot_xds_pushes", map[string]string{"type": "cds"}); n < 3 {
		t.Errorf("pilot_xds_pushes{type=cds} = %v, want ≥ 3", n)
	}
	c.close()
	d.close()
	eventually(t, "gauge back to zero", func() bool { return metric(t, h.reg, "pilot_xds", nil) == 0 })
}

func TestDisconnectCleansUp(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the harness stops
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	for round := range 3 {
		c := h.sotw()
		handshake(t, c, sidecarID("10.0.0.1", "p1", "ns1"))
		d := h.delta()
		first := dreq(xds.ClusterType, "")
		first.Node = node(sidecarID("10.0.0.2", "p2", "ns1"))
		d.send(first)
		d.recv()
		eventually(t, "connected", func() bool { return len(h.srv.Clients()) == 2 })
		h.publish(fmt.Sprint("r", round), baseWorld(fmt.Sprint(round)), PushRequest{Full: true})
		c.close()
		d.close()
		eventually(t, "state dropped", func() bool {
			h.srv.mu.Lock()
			defer h.srv.mu.Unlock()
			return len(h.srv.conns) == 0
		})
	}
}
