package dashboard

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func sample(t *testing.T, name string) Sample {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseSample(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

func ptr(f float64) *float64 { return &f }

// TestComputeTwoScrapes computes the graph from two rounds of real
// exposition text (testdata/*.prom) ten seconds apart; the expected
// numbers are worked out by hand in the comments.
func TestComputeTwoScrapes(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const pp, rv, gone = "sidecar~127.0.0.10~productpage-v1.default~default.svc.cluster.local",
		"sidecar~127.0.0.13~reviews-v2.default~default.svc.cluster.local",
		"sidecar~127.0.0.99~gone.default~default.svc.cluster.local"
	round := func(at time.Time, suffix string) Round {
		return Round{At: at, Proxies: map[string]Scrape{
			pp:   {Proxy: pp, Name: "productpage-v1.default", At: at, Sample: sample(t, "productpage-"+suffix+".prom")},
			rv:   {Proxy: rv, Name: "reviews-v2.default", At: at.Add(500 * time.Millisecond), Sample: sample(t, "reviews-"+suffix+".prom")},
			gone: {Proxy: gone, Name: "gone.default", At: at, Error: "scraping http://127.0.0.99:15020/stats/prometheus: connection refused"},
		}}
	}
	prev := round(t0, "0")
	cur := round(t0.Add(10*time.Second), "1")
	got := Compute(&prev, cur)

	want := []Edge{
		// details: 50 → 50, idle now.
		{Source: "default/productpage-v1", Target: "default/details-v1", Service: "details.default.svc.cluster.local",
			Reporter: "source", Total: 50, MTLS: MTLSUnknown},
		// reviews: 200s 100 → 180, 503s 10 → 30: 100 requests in 10 s,
		// 20 of them 503. Duration buckets (both codes, deltas):
		// ≤1: 20, ≤5: 30, ≤10: 70, ≤25: 90, ≤50: 95, ≤100: 100; rank 99
		// falls in (50,100]: 50 + 50·(99−95)/5 = 90 ms. The reviews
		// sidecar reports the same traffic as destination with
		// mutual_tls: that sets mTLS, not the counts.
		{Source: "default/productpage-v1", Target: "default/reviews-v2", Service: "reviews.default.svc.cluster.local",
			Reporter: "source", Total: 210, RPS: 10, ErrorRate: 0.2, P99: ptr(90), MTLS: MTLSMutual},
		// A 404 NR series that appeared between the scrapes: 0 → 5.
		{Source: "default/productpage-v1", Target: "service:nosuch.default.svc.cluster.local", Service: "nosuch.default.svc.cluster.local",
			Reporter: "source", Total: 5, RPS: 0.5, MTLS: MTLSUnknown},
		// reviews → ratings: 40 → 60, no histogram.
		{Source: "default/reviews-v2", Target: "default/ratings-v1", Service: "ratings.default.svc.cluster.local",
			Reporter: "source", Total: 60, RPS: 2, MTLS: MTLSUnknown},
		// No sidecar on the caller: only the destination reported, 7 → 9.
		{Source: "unknown", Target: "default/reviews-v2", Service: "reviews.default.svc.cluster.local",
			Reporter: "destination", Total: 9, RPS: 0.2, MTLS: MTLSNone},
	}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })
	if diff := cmp.Diff(want, got.Edges, approx); diff != "" {
		t.Errorf("edges (-want +got):\n%s", diff)
	}
	// Columns by distance from the callers nobody calls; names sort rows.
	wantNodes := []Node{
		{ID: "default/details-v1", Kind: KindWorkload, Name: "details-v1", Namespace: "default", X: 450, Y: 54},
		{ID: "default/productpage-v1", Kind: KindWorkload, Name: "productpage-v1", Namespace: "default", X: 90, Y: 54},
		{ID: "default/ratings-v1", Kind: KindWorkload, Name: "ratings-v1", Namespace: "default", X: 810, Y: 54},
		{ID: "default/reviews-v2", Kind: KindWorkload, Name: "reviews-v2", Namespace: "default", X: 450, Y: 274},
		{ID: "service:nosuch.default.svc.cluster.local", Kind: KindService, Name: "nosuch.default.svc.cluster.local", X: 450, Y: 164},
		{ID: "unknown", Kind: KindUnknown, Name: "unknown", X: 90, Y: 164},
	}
	if diff := cmp.Diff(wantNodes, got.Nodes, approx); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
	if !got.Measured || got.Width != 900 || got.Height != 328 {
		t.Errorf("measured %v, size %vx%v; want true, 900x328", got.Measured, got.Width, got.Height)
	}
	if len(got.Scrapes) != 3 || got.Scrapes[2].Proxy != gone || !strings.Contains(got.Scrapes[2].Error, "connection refused") {
		t.Errorf("scrapes = %+v; want the failed one listed last (by proxy ID) with its error", got.Scrapes)
	}
}

// TestComputeFirstRound: one round gives edges and totals, no rates.
func TestComputeFirstRound(t *testing.T) {
	at := time.Unix(1000, 0)
	g := Compute(nil, Round{At: at, Proxies: map[string]Scrape{"p": {Proxy: "p", At: at, Sample: sample(t, "reviews-0.prom")}}})
	if g.Measured {
		t.Error("measured after one round")
	}
	for _, e := range g.Edges {
		if e.RPS != 0 || e.P99 != nil || e.Total == 0 {
			t.Errorf("edge %+v: want a total and no rate", e)
		}
	}
	// mTLS comes from the counts since start when there is no window.
	if e := g.Edges[0]; e.Source != "default/productpage-v1" || e.MTLS != MTLSMutual {
		t.Errorf("first edge %+v: want productpage → reviews with mutual_tls", e)
	}
}

// TestComputeCounterReset: a proxy that restarted counts from zero; its
// current value is the increase.
func TestComputeCounterReset(t *testing.T) {
	k := series{Reporter: "source", SourceWorkload: "a", SourceNamespace: "ns", DestWorkload: "b", DestNamespace: "ns", DestService: "b.ns", ResponseCode: "500"}
	at := time.Unix(1000, 0)
	prev := Round{At: at, Proxies: map[string]Scrape{"p": {At: at, Sample: Sample{Requests: map[series]float64{k: 1000}}}}}
	cur := Round{At: at.Add(4 * time.Second), Proxies: map[string]Scrape{"p": {At: at.Add(4 * time.Second), Sample: Sample{Requests: map[series]float64{k: 8}}}}}
	g := Compute(&prev, cur)
	if len(g.Edges) != 1 || g.Edges[0].RPS != 2 || g.Edges[0].ErrorRate != 1 {
		t.Fatalf("edges = %+v; want one at 2 rps, all errors", g.Edges)
	}
}

func TestQuantile(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    histogram
		q    float64
		want float64
		ok   bool
	}{
		{"empty", histogram{Bounds: []float64{1, 5}, Counts: []float64{0, 0}}, 0.99, 0, false},
		{"first bucket starts at zero", histogram{Bounds: []float64{10, 20}, Counts: []float64{100, 100}, Count: 100}, 0.5, 5, true},
		{"interpolated", histogram{Bounds: []float64{10, 20}, Counts: []float64{50, 100}, Count: 100}, 0.99, 19.8, true},
		{"in +Inf: largest bound", histogram{Bounds: []float64{10, 20}, Counts: []float64{1, 2}, Count: 100}, 0.99, 20, true},
		{"median on a boundary", histogram{Bounds: []float64{1, 5, 10}, Counts: []float64{2, 4, 4}, Count: 4}, 0.5, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.h.quantile(tc.q)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestAddHistogramsDifferentBounds(t *testing.T) {
	a := histogram{Bounds: []float64{1, 10}, Counts: []float64{1, 2}, Count: 3}
	b := histogram{Bounds: []float64{5}, Counts: []float64{4}, Count: 4}
	got := addHistograms(a, b)
	want := histogram{Bounds: []float64{1, 5, 10}, Counts: []float64{1 + 4, 2 + 4, 2 + 4}, Count: 7}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseSampleErrors(t *testing.T) {
	if _, err := ParseSample(strings.NewReader("istio_requests_total{reporter=\"source\" 1\n")); err == nil || !strings.Contains(err.Error(), "parsing metrics") {
		t.Errorf("malformed exposition: err = %v", err)
	}
}
