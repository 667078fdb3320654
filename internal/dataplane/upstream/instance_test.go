package upstream_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// start compiles the generated cluster name, runs it and feeds it its EDS.
func start(t *testing.T, g generated, name string, opts upstream.Options) *upstream.Instance {
	t.Helper()
	c, err := upstream.Compile(g.cluster(t, name))
	if err != nil {
		t.Fatal(err)
	}
	in, err := upstream.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	eps, err := upstream.Endpoints(g.cla(t, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Update(eps); err != nil {
		t.Fatal(err)
	}
	return in
}

// update compiles cla and gives it to in.
func update(t *testing.T, in *upstream.Instance, cla *endpointv3.ClusterLoadAssignment) {
	t.Helper()
	eps, err := upstream.Endpoints(cla)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Update(eps); err != nil {
		t.Fatal(err)
	}
}

func pickAll(t *testing.T, in *upstream.Instance, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		h, err := in.Pick(lb.PickContext{})
		if err != nil {
			t.Fatal(err)
		}
		out[h.Key()]++
	}
	return out
}

func hostByKey(t *testing.T, in *upstream.Instance, key string) *host.Host {
	t.Helper()
	for range 1000 {
		h, err := in.Pick(lb.PickContext{})
		if err == nil && h.Key() == key {
			return h
		}
	}
	t.Fatalf("host %s never picked", key)
	return nil
}

// TestOutlierEjectionEndToEnd: a DestinationRule's outlier detection
// ejects a failing host from the balancer, and brings it back after the
// base ejection time.
func TestOutlierEjectionEndToEnd(t *testing.T) {
	g := generate(t, reviewsRule(`    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}`), "")
	clock := &fakeClock{t: time.Unix(5000, 0)}
	in := start(t, g, reviewsCluster, upstream.Options{Now: clock.now})
	bad := hostByKey(t, in, "10.1.0.2:9080")

	for range 3 {
		in.Report(bad, outlier.Result{Status: 503})
	}
	if got := pickAll(t, in, 300); got[bad.Key()] != 0 || got["10.1.0.1:9080"] != 150 {
		t.Errorf("after ejection: picks %v", got)
	}
	var st upstream.HostStatus
	for _, s := range in.Hosts() {
		if s.Address == bad.Key() {
			st = s
		}
	}
	if !st.Outlier.Ejected || st.Outlier.Ejections != 1 || st.Health != host.Unhealthy || !st.Outlier.LastEjection.Equal(clock.now()) {
		t.Errorf("admin state %+v", st)
	}
	// A second host may not go: 2 of 3 is over 50%.
	other := hostByKey(t, in, "10.1.0.3:9080")
	for range 3 {
		in.Report(other, outlier.Result{Status: 500})
	}
	if other.Ejected() || in.OutlierStats().Overflow != 1 {
		t.Errorf("max_ejection_percent: second host ejected=%v stats %+v", other.Ejected(), in.OutlierStats())
	}

	in.Tick(clock.advance(29 * time.Second))
	if !bad.Ejected() {
		t.Fatal("un-ejected before the base ejection time")
	}
	in.Tick(clock.advance(time.Second))
	if bad.Ejected() {
		t.Fatal("still ejected after the base ejection time")
	}
	if got := pickAll(t, in, 300); got[bad.Key()] != 100 {
		t.Errorf("after un-ejection: picks %v", got)
	}
}

// TestLocalityFailover: Istio's locality failover puts the proxy's own
// locality at priority 0; as its hosts are ejected, traffic spills to the
// next priority (70% kept with half the hosts healthy, as Envoy's 1.4
// overprovisioning says), then moves there entirely.
func TestLocalityFailover(t *testing.T) {
	g := generate(t, `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: geo, namespace: default}
spec:
  hosts: [geo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.4.0.1, locality: us-east/zone1/sub1}
  - {address: 10.4.0.2, locality: us-east/zone1/sub1}
  - {address: 10.4.0.3, locality: us-east/zone2/sub1}
  - {address: 10.4.0.4, locality: eu-west/zone1/sub1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: geo, namespace: default}
spec:
  host: geo.default.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, maxEjectionPercent: 100, baseEjectionTime: 30s}
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: eu-west}]
`, "us-east/zone1/sub1")
	const name = "outbound|8080||geo.default.svc.cluster.local"
	in := start(t, g, name, upstream.Options{})
	load := in.Load()
	if len(load.Healthy) < 2 || load.Healthy[0] != 100 {
		t.Fatalf("initial load %+v", load)
	}
	priorities := map[string]uint32{}
	for _, s := range in.Hosts() {
		priorities[s.Address] = s.Priority
	}
	if priorities["10.4.0.1:8080"] != 0 || priorities["10.4.0.2:8080"] != 0 || priorities["10.4.0.3:8080"] == 0 ||
		priorities["10.4.0.4:8080"] <= priorities["10.4.0.3:8080"] {
		t.Fatalf("priorities %v", priorities)
	}
	if got := pickAll(t, in, 100); got["10.4.0.1:8080"]+got["10.4.0.2:8080"] != 100 {
		t.Errorf("healthy P0 takes everything: %v", got)
	}

	eject := func(key string) {
		h := hostByKey(t, in, key)
		in.Report(h, outlier.Result{Status: 500})
		in.Report(h, outlier.Result{Status: 500})
		if !h.Ejected() {
			t.Fatalf("%s not ejected", key)
		}
	}
	eject("10.4.0.1:8080")
	if l := in.Load(); l.Healthy[0] != 70 || l.Healthy[1] != 30 {
		t.Errorf("one of two P0 hosts ejected: load %v, want 70/30", l.Healthy)
	}
	eject("10.4.0.2:8080")
	if got := pickAll(t, in, 100); got["10.4.0.3:8080"] != 100 {
		t.Errorf("P0 down: picks %v, want all on us-east/zone2", got)
	}
	eject("10.4.0.3:8080")
	if got := pickAll(t, in, 100); got["10.4.0.4:8080"] != 100 {
		t.Errorf("us-east down: picks %v, want all on eu-west", got)
	}
}

// TestUpdateKeepsHosts: EDS updates keep hosts (and their counters and
// outlier state) by address.
// TestBalancerBuiltOnDemand: endpoint updates and health changes build no
// balancer (a sidecar's clusters that never get traffic keep none); the
// first pick after them builds one, over the current hosts and health.
func TestBalancerBuiltOnDemand(t *testing.T) {
	g := generate(t, reviewsRule(`    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}`), "")
	in := start(t, g, reviewsCluster, upstream.Options{})
	built := func(want uint64) {
		t.Helper()
		if got := in.BalancersBuilt(); got != want {
			t.Fatalf("balancers built: %d, want %d", got, want)
		}
	}
	built(0)
	pickAll(t, in, 5)
	built(1)
	eps, err := upstream.Endpoints(g.cla(t, reviewsCluster))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := in.Update(eps); err != nil {
			t.Fatal(err)
		}
	}
	built(1)
	h := hostByKey(t, in, "10.1.0.1:9080")
	built(2)
	in.Report(h, outlier.Result{Status: 500}) // ejected
	built(2)
	if got := pickAll(t, in, 50); got[h.Key()] != 0 {
		t.Errorf("ejected host picked: %v", got)
	}
	built(3)
	if l := in.Load(); len(l.Healthy) == 0 {
		t.Errorf("load %+v", l)
	}
	built(3) // the admin's view reuses the current balancer
}

// TestHostsBuiltOnDemand: until its first pick a cluster keeps only its
// load assignment, and the admin's views (Hosts, Load) report from it
// without building hosts or a balancer; once built, an update marks the
// hosts that left as removed (their pools drain).
func TestHostsBuiltOnDemand(t *testing.T) {
	g := generate(t, reviewsRule(`    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}`), "")
	in := start(t, g, reviewsCluster, upstream.Options{})
	hosts := in.Hosts()
	if len(hosts) != 3 || hosts[0].Address != "10.1.0.1:9080" || hosts[0].Weight != 1 || hosts[0].Health != host.Healthy {
		t.Fatalf("hosts before the first pick: %+v", hosts)
	}
	if l := in.Load(); len(l.Healthy) == 0 || l.Healthy[0] != 100 {
		t.Errorf("load before the first pick: %+v", l)
	}
	if in.HostsBuilt() || in.BalancersBuilt() != 0 {
		t.Fatalf("admin views built hosts (%v) or a balancer (%d)", in.HostsBuilt(), in.BalancersBuilt())
	}
	h := hostByKey(t, in, "10.1.0.2:9080")
	if !in.HostsBuilt() {
		t.Fatal("a pick did not build the hosts")
	}
	h.Stats.RqTotal.Add(1)
	if got := in.Hosts()[1]; got.Address != "10.1.0.2:9080" || got.RqTotal != 1 {
		t.Errorf("built host status %+v", got)
	}
	cla := g.cla(t, reviewsCluster)
	cla.Endpoints[0].LbEndpoints = cla.Endpoints[0].LbEndpoints[:1] // drop 10.1.0.2
	update(t, in, cla)
	if !h.Removed() {
		t.Error("host that left the assignment not marked removed")
	}
	if got := pickAll(t, in, 20); got[h.Key()] != 0 {
		t.Errorf("removed host picked: %v", got)
	}
}

func TestUpdateKeepsHosts(t *testing.T) {
	g := generate(t, reviewsRule(`    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}`), "")
	in := start(t, g, reviewsCluster, upstream.Options{})
	h := hostByKey(t, in, "10.1.0.1:9080")
	h.Stats.RqActive.Add(2)
	in.Report(h, outlier.Result{Status: 500})

	cla := g.cla(t, reviewsCluster)
	cla.Endpoints[0].LbEndpoints[0].LoadBalancingWeight.Value = 9
	cla.Endpoints[0].LbEndpoints = cla.Endpoints[0].LbEndpoints[:1] // drop 10.1.0.2
	update(t, in, cla)
	hosts := in.Hosts()
	if len(hosts) != 2 {
		t.Fatalf("hosts %+v", hosts)
	}
	s := hosts[0]
	if s.Address != "10.1.0.1:9080" || s.Weight != 9 || s.RqActive != 2 || !s.Outlier.Ejected {
		t.Errorf("kept host %+v", s)
	}
	if h.Weight() != 9 {
		t.Error("host object not reused")
	}
	if got := pickAll(t, in, 10); got["10.1.0.3:9080"] != 10 {
		t.Errorf("picks %v", got)
	}
	if in.OutlierStats().Active != 1 {
		t.Errorf("stats %+v", in.OutlierStats())
	}
	// Removing the ejected host releases its ejection.
	cla.Endpoints = cla.Endpoints[1:]
	update(t, in, cla)
	if in.OutlierStats().Active != 0 {
		t.Errorf("stats after removal %+v", in.OutlierStats())
	}
}

func TestInstanceBreakers(t *testing.T) {
	g := generate(t, reviewsRule(`    connectionPool:
      http: {http2MaxRequests: 2}`), "")
	in := start(t, g, reviewsCluster, upstream.Options{})
	b := in.Breakers(circuit.Default)
	for range 2 {
		if err := b.TryAcquire(circuit.Requests); err != nil {
			t.Fatal(err)
		}
	}
	var o circuit.Overflow
	if err := b.TryAcquire(circuit.Requests); !errors.As(err, &o) || o.ResponseFlag() != "UO" {
		t.Errorf("third request: %v", err)
	}
	if in.Breakers(circuit.High).Max(circuit.Requests) != 1024 {
		t.Error("high priority breakers are not Envoy's defaults")
	}
}

// TestRunUnejects: Run is the cluster's timer goroutine; with fake time it
// un-ejects on schedule and stops with its context, leaving nothing behind.
func TestRunUnejects(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := generate(t, reviewsRule(`    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 5s, maxEjectionPercent: 100}`), "")
	synctest.Test(t, func(t *testing.T) {
		in := start(t, g, reviewsCluster, upstream.Options{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- in.Run(ctx) }()
		h := hostByKey(t, in, "10.1.0.1:9080")
		in.Report(h, outlier.Result{Status: 502})
		time.Sleep(4500 * time.Millisecond)
		synctest.Wait()
		if !h.Ejected() {
			t.Fatal("un-ejected early")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if h.Ejected() {
			t.Fatal("not un-ejected after 5s")
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// TestConcurrentInstance: picks, reports, counters, EDS updates, ticks and
// admin reads at once (run with -race).
func TestConcurrentInstance(t *testing.T) {
	for _, policy := range []string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"} {
		t.Run(policy, func(t *testing.T) {
			g := generate(t, reviewsRule(`    loadBalancer: {simple: `+policy+`}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 100}`), "")
			clock := &fakeClock{t: time.Unix(0, 0)}
			in := start(t, g, reviewsCluster, upstream.Options{Now: clock.now})
			full, err := upstream.Endpoints(g.cla(t, reviewsCluster))
			if err != nil {
				t.Fatal(err)
			}
			partial := *full
			partial.Localities = full.Localities[:1]
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Go(func() {
					for i := range 3000 {
						h, err := in.Pick(lb.PickContext{Hash: uint64(i), HasHash: true})
						if err != nil {
							continue // everything ejected, panic off: allowed
						}
						h.Stats.RqActive.Add(1)
						status := 200
						if (i+w)%4 == 0 {
							status = 503
						}
						in.Report(h, outlier.Result{Status: status})
						h.Stats.RqActive.Add(-1)
					}
				})
			}
			wg.Go(func() {
				for i := range 200 {
					eps := full
					if i%2 == 1 {
						eps = &partial
					}
					if err := in.Update(eps); err != nil {
						t.Error(err)
					}
					in.Tick(clock.advance(time.Second))
					_ = in.Hosts()
					_ = in.Load()
				}
			})
			wg.Wait()
			if err := in.Update(full); err != nil {
				t.Fatal(err)
			}
			in.Tick(clock.advance(time.Hour))
			for _, s := range in.Hosts() {
				if s.Outlier.Ejected {
					t.Errorf("%s still ejected after an hour: %+v", s.Address, s.Outlier)
				}
				if s.RqActive != 0 {
					t.Errorf("%s: %d active requests left", s.Address, s.RqActive)
				}
			}
		})
	}
}
