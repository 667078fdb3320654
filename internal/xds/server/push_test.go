package server

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

func TestDebounceMergesUpdatesIntoOnePush(t *testing.T) {
	h := newHarness(t, Config{Debounce: 300 * time.Millisecond, DebounceMax: 10 * time.Second})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	id := sidecarID("10.0.0.1", "p1", "ns1")
	c := h.sotw()
	handshake(t, c, id)
	calls := h.gen.total()
	debounced := metric(t, h.reg, "pilot_debounce_time", nil)

	const n = 20
	for i := range n {
		h.update(fmt.Sprintf("m%d", i), baseWorld(fmt.Sprintf("t%d", i)), PushRequest{
			Full: i == 7, // one full among endpoint-only updates: the merge is full
			ConfigsUpdated: map[config.Key]struct{}{
				{Kind: schema.ServiceEntry, Namespace: "ns1", Name: fmt.Sprint("se", i)}: {}},
		})
	}
	for _, want := range []string{xds.ClusterType, xds.EndpointType, xds.ListenerType, xds.RouteType} {
		r := c.recv()
		if r.GetTypeUrl() != want || !strings.HasSuffix(contents(t, r), fmt.Sprintf("=t%d", n-1)) {
			t.Fatalf("got %s %s, want %s of the last snapshot", xds.ShortName(r.GetTypeUrl()), contents(t, r), xds.ShortName(want))
		}
		c.send(ack(r, names(t, r)...))
	}
	if got := metric(t, h.reg, "pilot_debounce_time", nil) - debounced; got != 1 {
		t.Errorf("%v debounced pushes, want 1", got)
	}
	if got := h.gen.total() - calls; got != 4 {
		t.Errorf("%d generator calls, want 4 (one per type)", got)
	}
}

func TestDebouncerMaxDelay(t *testing.T) {
	d := newDebouncer(50*time.Millisecond, 150*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pushed := make(chan *pushEvent, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.run(ctx, func(ev *pushEvent, _ time.Duration) { pushed <- ev })
	}()
	// Updates every 10ms never leave 50ms of quiet: only DebounceMax
	// forces the push.
	t0 := time.Now()
	stop := time.After(5 * time.Second)
	var ev *pushEvent
loop:
	for i := 0; ; i++ {
		select {
		case ev = <-pushed:
			break loop
		case <-stop:
			t.Fatal("DebounceMax did not force a push")
		case <-time.After(10 * time.Millisecond):
			d.add(snapshot(fmt.Sprint(i)), PushRequest{Full: false, Start: t0.Add(time.Duration(i) * time.Millisecond),
				ServicesUpdated: map[model.ServiceKey]struct{}{{Hostname: fmt.Sprint(i)}: {}}}, time.Now())
		}
	}
	if !ev.start.Equal(t0) {
		t.Errorf("merged start %v, want the earliest %v", ev.start, t0)
	}
	if len(ev.services) < 2 || ev.full || ev.all {
		t.Errorf("merged event %+v: want the union of endpoint-only updates", ev)
	}
	cancel()
	<-done
}

func TestMerge(t *testing.T) {
	t0 := time.Unix(100, 0)
	k := func(s string) map[model.ServiceKey]struct{} {
		return map[model.ServiceKey]struct{}{{Hostname: s}: {}}
	}
	s1, s2 := snapshot("1"), snapshot("2")
	cases := []struct {
		name     string
		a, b     PushRequest
		full     bool
		all      bool
		services int
	}{
		{"union of endpoint changes", PushRequest{ServicesUpdated: k("a")}, PushRequest{ServicesUpdated: k("b")}, false, false, 2},
		{"full wins", PushRequest{ServicesUpdated: k("a")}, PushRequest{Full: true, ServicesUpdated: k("a")}, true, false, 1},
		{"unknown change set wins", PushRequest{ServicesUpdated: k("a")}, PushRequest{Full: true}, true, true, 0},
		{"unknown first", PushRequest{}, PushRequest{ServicesUpdated: k("b")}, false, true, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newEvent(s1, tc.a, t0.Add(time.Second))
			b := newEvent(s2, tc.b, t0)
			aServices := len(a.services)
			m := merge(a, b)
			if m.snap != s2 || m.full != tc.full || m.all != tc.all || len(m.services) != tc.services || !m.start.Equal(t0) {
				t.Fatalf("merged %+v", m)
			}
			if len(a.services) != aServices || a.snap != s1 {
				t.Fatal("merge modified its input")
			}
		})
	}
	// newEvent copies the caller's maps.
	req := PushRequest{ServicesUpdated: k("a")}
	ev := newEvent(s1, req, t0)
	req.ServicesUpdated[model.ServiceKey{Hostname: "z"}] = struct{}{}
	if len(ev.services) != 1 {
		t.Fatal("event shares the caller's map")
	}
}

func TestEndpointOnlyPush(t *testing.T) {
	h := newHarness(t, Config{})
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	id := sidecarID("10.0.0.1", "p1", "ns1")
	c := h.sotw()
	handshake(t, c, id)
	cdsCalls, ldsCalls := h.gen.count(id, xds.ClusterType), h.gen.count(id, xds.ListenerType)

	// Everything differs in v2, but the push is endpoint-only.
	h.update("v2", baseWorld("b"), PushRequest{Full: false})
	r := c.recv()
	if r.GetTypeUrl() != xds.EndpointType || contents(t, r) != "c1=b,c2=b" {
		t.Fatalf("got %s %s, want EDS", xds.ShortName(r.GetTypeUrl()), contents(t, r))
	}
	c.send(ack(r, "c1", "c2"))
	if h.gen.count(id, xds.ClusterType) != cdsCalls || h.gen.count(id, xds.ListenerType) != ldsCalls {
		t.Error("endpoint-only push regenerated CDS or LDS")
	}
	// A full push now sends the rest (EDS is unchanged): CDS comes first,
	// so no other type went out with the endpoint-only push.
	h.update("v3", baseWorld("b"), PushRequest{Full: true})
	var got []string
	for range 3 {
		r := c.recv()
		got = append(got, xds.ShortName(r.GetTypeUrl()))
		c.send(ack(r, names(t, r)...))
	}
	if want := []string{"CDS", "LDS", "RDS"}; !slices.Equal(got, want) {
		t.Fatalf("full push sent %v, want %v", got, want)
	}
}

// TestEndpointOnlyPushOfOwnInstance: an endpoint-only change that gives
// the proxy an instance of its own (a WorkloadEntry for its address) is a
// full push for that proxy: its inbound listeners and clusters change, not
// just EDS. (CI once saw a new workload's sidecar answer NC for 20 s: its
// LDS had the inbound route, its CDS not the cluster.)
func TestEndpointOnlyPushOfOwnInstance(t *testing.T) {
	h := newHarness(t, Config{})
	svc := &model.Service{Hostname: "details.default.svc.cluster.local", Namespace: "default",
		Ports: []model.Port{{Name: "http", Number: 9080, Protocol: model.ProtocolHTTP}}}
	h.gen.set("v1", baseWorld("a"))
	h.srv.Update(snapshot("v1", svc), PushRequest{Full: true})
	eventually(t, "v1", func() bool { return h.srv.current() != nil })
	id := sidecarID("10.0.0.30", "details-v2", "default")
	c := h.sotw()
	handshake(t, c, id)
	cdsCalls := h.gen.count(id, xds.ClusterType)

	h.gen.set("v2", baseWorld("b"))
	own := model.NewSnapshot(model.SnapshotInput{Version: "v2", Services: []*model.Service{svc},
		Endpoints: map[model.ServiceKey][]*model.Endpoint{svc.Key(): {{Address: "10.0.0.30", ServiceAccount: "details"}}}})
	h.srv.Update(own, PushRequest{Full: false, ServicesUpdated: map[model.ServiceKey]struct{}{svc.Key(): {}}})
	if r := c.recv(); r.GetTypeUrl() != xds.ClusterType || contents(t, r) != "c1=b,c2=b" {
		t.Fatalf("got %s %s, want CDS of v2 first", xds.ShortName(r.GetTypeUrl()), contents(t, r))
	}
	if h.gen.count(id, xds.ClusterType) == cdsCalls {
		t.Error("CDS not regenerated")
	}
}

func TestScopedPush(t *testing.T) {
	h := newHarness(t, Config{})
	svcA := &model.Service{Hostname: "a.ns-a.svc.cluster.local", Namespace: "ns-a", ExportTo: []string{"ns-a"}}
	svcB := &model.Service{Hostname: "b.ns-b.svc.cluster.local", Namespace: "ns-b", ExportTo: []string{"*"}}
	h.gen.set("v1", baseWorld("a"))
	h.srv.Update(snapshot("v1", svcA, svcB), PushRequest{Full: true})
	eventually(t, "v1", func() bool { return h.srv.current() != nil })

	idA, idB := sidecarID("10.0.0.1", "pa", "ns-a"), sidecarID("10.0.0.2", "pb", "ns-b")
	ca, cb := h.sotw(), h.sotw()
	handshake(t, ca, idA)
	handshake(t, cb, idB)
	callsB := h.gen.count(idB, xds.ClusterType)

	// svcA changes; it is visible to ns-a only.
	h.gen.set("v2", baseWorld("b"))
	h.srv.Update(snapshot("v2", svcA, svcB), PushRequest{Full: true,
		ServicesUpdated: map[model.ServiceKey]struct{}{svcA.Key(): {}}})
	for range 4 {
		r := ca.recv()
		ca.send(ack(r, names(t, r)...))
	}
	eventually(t, "proxy B skipped", func() bool { return metric(t, h.reg, "pilot_xds_scoped_skips", nil) == 1 })
	if h.gen.count(idB, xds.ClusterType) != callsB {
		t.Fatal("generator called for a proxy the change cannot affect")
	}

	// svcB changes; visible to all: B's first response carries v3.
	h.gen.set("v3", baseWorld("c"))
	h.srv.Update(snapshot("v3", svcA, svcB), PushRequest{Full: true,
		ServicesUpdated: map[model.ServiceKey]struct{}{svcB.Key(): {}}})
	if r := cb.recv(); r.GetTypeUrl() != xds.ClusterType || contents(t, r) != "c1=c,c2=c" {
		t.Fatalf("proxy B got %s %s, want CDS of v3", xds.ShortName(r.GetTypeUrl()), contents(t, r))
	}
}

// TestSlowConsumer: a proxy that stops reading blocks neither Update nor
// other proxies; its pushes merge in its mailbox instead of queueing.
func TestSlowConsumer(t *testing.T) {
	h := newHarness(t, Config{})
	big := strings.Repeat("x", 1<<20)
	bigWorld := func(tag string) world {
		w := baseWorld(tag)
		for k := range 4 {
			w[xds.EndpointType][fmt.Sprintf("big%d", k)] = tag + big
		}
		return w
	}
	h.publish("v0", bigWorld("a"), PushRequest{Full: true})
	fastID, slowID := sidecarID("10.0.0.1", "fast", "ns1"), sidecarID("10.0.0.2", "slow", "ns1")
	fast := h.sotw()
	handshake(t, fast, fastID)

	// The slow proxy asks for the big endpoints and never reads; a fixed,
	// small flow-control window makes the server's Send block.
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := slow.Send(&discovery.DiscoveryRequest{Node: node(slowID), TypeUrl: xds.EndpointType,
		ResourceNames: []string{"big0", "big1", "big2", "big3"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slow proxy's EDS generated", func() bool { return h.gen.count(slowID, xds.EndpointType) == 1 })

	for i := 1; i <= 5; i++ {
		tag := fmt.Sprintf("t%d", i)
		began := time.Now()
		h.update(fmt.Sprintf("v%d", i), bigWorld(tag), PushRequest{Full: false})
		if d := time.Since(began); d > time.Second {
			t.Fatalf("Update blocked for %v", d)
		}
		r := fast.recv()
		if r.GetTypeUrl() != xds.EndpointType || contents(t, r) != "c1="+tag+",c2="+tag {
			t.Fatalf("fast proxy got %s %s", xds.ShortName(r.GetTypeUrl()), contents(t, r))
		}
		fast.send(ack(r, "c1", "c2"))
	}
	// gRPC queues one message without blocking, so the slow stream
	// goroutine is stuck in its second Send (the first push): nothing more
	// was generated for it, the later pushes merged in its mailbox.
	if n := h.gen.count(slowID, xds.EndpointType); n > 2 {
		t.Errorf("slow proxy generations = %d, want ≤ 2", n)
	}
	cancel()
	eventually(t, "slow stream cleaned up", func() bool { return len(h.srv.Clients()) == 1 })
}

func TestSendTimeoutClosesStream(t *testing.T) {
	h := newHarness(t, Config{SendTimeout: 200 * time.Millisecond})
	w := baseWorld("a")
	w[xds.ClusterType]["huge"] = strings.Repeat("x", 2<<20)
	w[xds.ListenerType]["huge"] = strings.Repeat("x", 2<<20)
	h.publish("v1", w, PushRequest{Full: true})
	cc, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// gRPC queues the first response without blocking; the second blocks.
	if err := slow.Send(&discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.2", "slow", "ns1")), TypeUrl: xds.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if err := slow.Send(&discovery.DiscoveryRequest{TypeUrl: xds.ListenerType}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "stream closed by send timeout", func() bool {
		return metric(t, h.reg, "pilot_xds_send_timeouts", nil) == 1 && len(h.srv.Clients()) == 0
	})
}

func TestGeneratorErrorRetriedOnNextPush(t *testing.T) {
	h := newHarness(t, Config{})
	var fail atomic.Bool
	fail.Store(true)
	h.gen.hook = func(_ *model.Proxy, typeURL string) error {
		if typeURL == xds.ClusterType && fail.Load() {
			return errBoom
		}
		return nil
	}
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	c := h.sotw()
	c.send(&discovery.DiscoveryRequest{Node: node(sidecarID("10.0.0.1", "p1", "ns1")), TypeUrl: xds.ClusterType})
	// The failed type does not break the stream: LDS is answered.
	c.send(&discovery.DiscoveryRequest{TypeUrl: xds.ListenerType})
	if r := c.recv(); r.GetTypeUrl() != xds.ListenerType {
		t.Fatalf("got %s", r.GetTypeUrl())
	}
	if n := metric(t, h.reg, "pilot_total_xds_internal_errors", map[string]string{"type": "cds"}); n != 1 {
		t.Errorf("internal errors = %v", n)
	}
	// The next push, even endpoint-only, retries CDS.
	fail.Store(false)
	h.update("v2", baseWorld("a"), PushRequest{Full: false})
	if r := c.recv(); r.GetTypeUrl() != xds.ClusterType {
		t.Fatalf("got %s, want CDS retried", r.GetTypeUrl())
	}
}

func TestPushConcurrencyBounded(t *testing.T) {
	h := newHarness(t, Config{PushConcurrency: 2})
	var cur, peak atomic.Int32
	release := make(chan struct{})
	h.gen.hook = func(*model.Proxy, string) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		cur.Add(-1)
		return nil
	}
	h.publish("v1", baseWorld("a"), PushRequest{Full: true})
	var clients []*sotwClient
	for k := range 6 {
		c := h.sotw()
		c.send(&discovery.DiscoveryRequest{Node: node(sidecarID(fmt.Sprintf("10.0.0.%d", k+1), fmt.Sprint("p", k), "ns1")), TypeUrl: xds.ClusterType})
		clients = append(clients, c)
	}
	eventually(t, "two generations running", func() bool { return cur.Load() == 2 })
	close(release)
	for _, c := range clients {
		c.recv()
	}
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent generations %d, want 2", p)
	}
}
