//go:build linux

package sidecar

import (
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/trellismesh/trellis/test/framework"
)

// drReviewsOutlier is the Bookinfo reviews DestinationRule with round robin
// and outlier detection (consecutive 5xx) for the whole service.
const drReviewsOutlier = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
  - name: v3
    labels:
      version: v3
`

// vsReviewsService routes to the whole service (no subset): the cluster
// balances over v1..v3.
const vsReviewsService = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
`

// vsMirrorV3 routes everything to v1 and mirrors every request to v3.
const vsMirrorV3 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100
    mirror:
      host: reviews
      subset: v3
    mirrorPercentage:
      value: 100.0
`

// testMirror: clients get only v1's answers, v3 receives a copy of each
// request with the authority suffixed "-shadow" (before the port, as Envoy).
func testMirror(t *testing.T, m *mesh) {
	v1, v2, v3 := m.backends["v1"], m.backends["v2"], m.backends["v3"]
	m.applyVS(t, vsMirrorV3)
	shadow := fmt.Sprintf("%s-shadow:%d", reviewsHost, reviewsPort)
	// In force when the answers are v1's and v3 is receiving shadow copies.
	framework.Eventually(t, propagation, func() error {
		before := v3.hostCounts()[shadow]
		if err := only("reviews-v1")(m.load(20, 4, "/")); err != nil {
			return err
		}
		deadline := time.Now().Add(time.Second)
		for v3.hostCounts()[shadow] == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if v3.hostCounts()[shadow] == before {
			return fmt.Errorf("v3 received no mirrored request (Host %q); hosts seen by v3: %v", shadow, v3.hostCounts())
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // let the last round's mirrors land
	const n = 200
	v1Before, v2Before, v3Before := v1.requests.Load(), v2.requests.Load(), v3.requests.Load()
	v3Hosts := v3.hostCounts()
	r := m.load(n, 4, "/")
	// Mirrors are fire and forget: wait (bounded) for the copies to arrive.
	deadline := time.Now().Add(5 * time.Second)
	for v3.requests.Load()-v3Before < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // and make sure no extra copies follow
	got1, got2, got3 := v1.requests.Load()-v1Before, v2.requests.Load()-v2Before, v3.requests.Load()-v3Before
	hosts := v3.hostCounts()
	for h, c := range v3Hosts {
		hosts[h] -= c
		if hosts[h] == 0 {
			delete(hosts, h)
		}
	}
	t.Logf("route v1, mirror v3 100%%: %v; backends received v1=%d v2=%d v3=%d; v3 hosts %v", r, got1, got2, got3, hosts)
	if r.Names["reviews-v1"] != n {
		t.Errorf("clients should get only v1's answers: want %d/%d on v1: %v", n, n, r)
	}
	if got1 != n || got2 != 0 {
		t.Errorf("backends received v1=%d v2=%d, want v1=%d v2=0", got1, got2, n)
	}
	if got3 != n {
		t.Errorf("v3 received %d mirrored requests for %d sent with mirrorPercentage 100", got3, n)
	}
	if want := map[string]int{shadow: n}; !maps.Equal(hosts, want) {
		t.Errorf("v3 saw Hosts %v, want %v (authority suffixed -shadow, as Envoy)", hosts, want)
	}
	if last := v1.lastReply(); last.Host != fmt.Sprintf("%s:%d", reviewsHost, reviewsPort) {
		t.Errorf("v1 saw Host %q, want the unmodified authority", last.Host)
	}
}

// vsMirrorV3Quarter routes everything to v1 and mirrors a quarter of the
// requests to v3: mirrorPercentage 25 becomes the mirror policy's
// runtime_fraction default_value 250000/MILLION, which the client sidecar
// samples per request. The marker tells its routing from vsMirrorV3's.
const vsMirrorV3Quarter = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 100
    mirror:
      host: reviews
      subset: v3
    mirrorPercentage:
      value: 25.0
    headers:
      request:
        set:
          ` + markerHeader + `: mirror-v3-25
`

// mirrorQuarterN is the number of requests testMirrorPercentage measures:
// with 25 % mirrored the copies are binomial, σ ≈ 19; ±5 points (±100) is
// over 5σ.
const mirrorQuarterN = 2000

// testMirrorPercentage: with mirrorPercentage 25, v3 receives a copy of
// 25 % ± 5 points of the requests; clients get only v1's answers.
func testMirrorPercentage(t *testing.T, m *mesh) {
	v1, v2, v3 := m.backends["v1"], m.backends["v2"], m.backends["v3"]
	m.applyVS(t, vsMirrorV3Quarter)
	m.until(t, propagation, 20, "/", nil, marked("reviews-v1", "mirror-v3-25"))
	// Copies of the rounds above (some maybe from the previous,
	// mirror-everything route) must land before counting.
	quiesce(t, v3)
	const n = mirrorQuarterN
	v1Before, v2Before, v3Before := v1.requests.Load(), v2.requests.Load(), v3.requests.Load()
	shadow := fmt.Sprintf("%s-shadow:%d", reviewsHost, reviewsPort)
	shadowBefore := v3.hostCounts()[shadow]
	start := time.Now()
	r := m.load(n, 8, "/")
	took := time.Since(start)
	// Mirrors are fire and forget: wait (bounded) until no more arrive.
	quiesce(t, v3)
	got1, got2, got3 := v1.requests.Load()-v1Before, v2.requests.Load()-v2Before, v3.requests.Load()-v3Before
	share := float64(got3) / n
	t.Logf("route v1, mirror v3 25%% over %d requests (%v): %v; backends received v1=%d v2=%d v3=%d (mirrored share %.3f)",
		n, took.Round(time.Millisecond), r, got1, got2, got3, share)
	if r.Names["reviews-v1"] != n {
		t.Errorf("clients should get only v1's answers: want %d/%d on v1: %v", n, n, r)
	}
	if got := r.Last.Headers.Get(markerHeader); got != "mirror-v3-25" {
		t.Errorf("v1 saw %s %q: not routed by the 25 %% mirror VirtualService", markerHeader, got)
	}
	if got1 != n || got2 != 0 {
		t.Errorf("backends received v1=%d v2=%d, want v1=%d v2=0", got1, got2, n)
	}
	if share < 0.25-tolerance || share > 0.25+tolerance {
		t.Errorf("v3 received %d mirrored copies of %d requests (%.3f), want 0.25 ± %.2f", got3, n, share, tolerance)
	}
	if copies := int64(v3.hostCounts()[shadow] - shadowBefore); copies != got3 {
		t.Errorf("v3 received %d requests, %d of them with Host %s: want all mirrored copies", got3, copies, shadow)
	}
}

// quiesce waits until b has received no request for 300ms (at most 5s).
func quiesce(t *testing.T, b *backend) {
	t.Helper()
	const quiet = 300 * time.Millisecond
	deadline := time.Now().Add(5 * time.Second)
	last, since := b.requests.Load(), time.Now()
	for time.Since(since) < quiet {
		if time.Now().After(deadline) {
			t.Fatalf("%s still receiving requests after 5s (%d so far)", b.name, b.requests.Load())
		}
		time.Sleep(20 * time.Millisecond)
		if n := b.requests.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

// testOutlierEjection: v2 answers 503 to everything; with consecutive5xx 3
// the client sidecar ejects it and the service is served by v1 and v3 only.
func testOutlierEjection(t *testing.T, m *mesh) {
	v2 := m.backends["v2"]
	v2.fail.Store(true)
	t.Cleanup(func() {
		v2.fail.Store(false)
		m.cp.WriteFile(t, "destination-rule.yaml", readSample(t, "destination-rule-reviews.yaml"))
	})
	m.cp.WriteFile(t, "destination-rule.yaml", drReviewsOutlier)
	m.applyVS(t, vsReviewsService)

	// Before the rule (or before the ejection) v2 gets its share and fails.
	// The ejection is observed once v2 has received at least the threshold
	// of (failing) requests and then a round of requests is answered 200
	// by v1 and v3 alone (by chance, with v2 still balanced: (2/3)^30 ≈
	// 5e-6); both v1 and v3 answering also rules out the previous
	// VirtualService (v1 only) still being in force.
	v2Start := v2.requests.Load()
	start := time.Now()
	var rounds int
	m.until(t, propagation, 30, "/", nil, func(r result) error {
		rounds++
		if seen := v2.requests.Load() - v2Start; seen < 3 {
			return fmt.Errorf("v2 received %d requests since the rule, fewer than consecutive5xxErrors: %v", seen, r)
		}
		if r.Codes[http.StatusOK] != r.N || r.Names["reviews-v2"] != 0 || r.Names["reviews-v1"] == 0 || r.Names["reviews-v3"] == 0 {
			return fmt.Errorf("v2 not ejected yet (want all 200 from v1 and v3): %v", r)
		}
		return nil
	})
	warm := v2.requests.Load() - v2Start
	t.Logf("ejection observed after %v, %d rounds; v2 received %d (failing) requests meanwhile", time.Since(start).Round(time.Millisecond), rounds, warm)

	const n = 100
	v2Before := v2.requests.Load()
	r := m.load(n, 4, "/")
	got2 := v2.requests.Load() - v2Before
	t.Logf("outlierDetection consecutive5xx 3, v2 failing, over %d requests: %v; v2 received %d", n, r, got2)
	if got2 != 0 {
		t.Errorf("ejected v2 received %d of %d requests, want 0", got2, n)
	}
	if r.Codes[http.StatusOK] != n || r.Names["reviews-v1"]+r.Names["reviews-v3"] != n {
		t.Errorf("want all %d answered 200 by v1 and v3: %v", n, r)
	}
	if r.Names["reviews-v1"] == 0 || r.Names["reviews-v3"] == 0 {
		t.Errorf("round robin over the remaining hosts should use both v1 and v3: %v", r)
	}
}
