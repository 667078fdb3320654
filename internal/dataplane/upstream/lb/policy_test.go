package lb_test

import (
	"math"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
)

// TestRoundRobinWeightedExact: Envoy's weighted round robin is an EDF
// schedule, so every full period of Σweights picks gives each host exactly
// its weight, whatever the starting point.
func TestRoundRobinWeightedExact(t *testing.T) {
	cases := []struct {
		name    string
		weights []uint32
	}{
		{"equal", []uint32{1, 1, 1, 1}},
		{"1:2:3:4", []uint32{1, 2, 3, 4}},
		{"gcd reduced", []uint32{10, 20, 30}},
		{"one heavy", []uint32{100, 1, 1, 1, 1}},
		{"period over the table (locked EDF)", []uint32{9000, 7, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := hostsN(len(tc.weights), tc.weights...)
			b := newBalancer(t, lb.DefaultConfig(lb.RoundRobin), flat(hs), seeded(7))
			var sum int
			g := 0
			for _, w := range tc.weights {
				sum += int(w)
				g = gcdInt(g, int(w))
			}
			period := sum / g
			const periods = 3
			got := counts(t, b, periods*period, nil)
			for i, h := range hs {
				want := periods * int(tc.weights[i]) / g
				if d := got[h] - want; d < -1 || d > 1 || (period <= 8192 && d != 0) {
					t.Errorf("host %d (weight %d): %d picks, want %d", i, tc.weights[i], got[h], want)
				}
			}
		})
	}
}

// TestRoundRobinWeightedSpread: EDF interleaves: with weights 1 and 3 no
// window of 4 consecutive picks misses the light host twice in a row.
func TestRoundRobinWeightedSpread(t *testing.T) {
	hs := hostsN(2, 1, 3)
	b := newBalancer(t, lb.DefaultConfig(lb.RoundRobin), flat(hs), seeded(1))
	run := 0
	for i := range 400 {
		h, _ := b.Pick(lb.PickContext{})
		if h == hs[1] {
			run++
		} else {
			run = 0
		}
		if run > 3 {
			t.Fatalf("pick %d: heavy host picked %d times in a row", i, run)
		}
	}
}

func TestRoundRobinEqualCycles(t *testing.T) {
	hs := hostsN(3)
	b := newBalancer(t, lb.DefaultConfig(lb.RoundRobin), flat(hs), seeded(3))
	first, _ := b.Pick(lb.PickContext{})
	seen := []*host.Host{first}
	for range 5 {
		h, _ := b.Pick(lb.PickContext{})
		seen = append(seen, h)
	}
	for i := 3; i < 6; i++ {
		if seen[i] != seen[i-3] {
			t.Fatalf("round robin does not cycle: %v", seen)
		}
	}
	if seen[0] == seen[1] || seen[1] == seen[2] || seen[0] == seen[2] {
		t.Fatalf("round robin repeats within a cycle")
	}
}

// TestLeastRequestPrefersLessLoaded: with equal weights, P2C never picks
// the most loaded of two sampled hosts.
func TestLeastRequestPrefersLessLoaded(t *testing.T) {
	hs := hostsN(2)
	hs[0].Stats.RqActive.Store(10)
	b := newBalancer(t, lb.DefaultConfig(lb.LeastRequest), flat(hs), seeded(5))
	const n = 40000
	got := counts(t, b, n, nil)
	// The loaded host wins only when both samples are it: 1/4.
	if share := float64(got[hs[0]]) / n; math.Abs(share-0.25) > 0.015 {
		t.Errorf("loaded host share %.3f, want 0.25 (both choices on it)", share)
	}

	// With 10 hosts and one idle, the idle one is picked whenever sampled:
	// 1 - (9/10)^2 = 19%.
	hs = hostsN(10)
	for _, h := range hs[1:] {
		h.Stats.RqActive.Store(3)
	}
	b = newBalancer(t, lb.DefaultConfig(lb.LeastRequest), flat(hs), seeded(6))
	got = counts(t, b, n, nil)
	if share := float64(got[hs[0]]) / n; math.Abs(share-0.19) > 0.015 {
		t.Errorf("idle host share %.3f, want 0.19", share)
	}

	// choice_count 5 samples more.
	cfg := lb.DefaultConfig(lb.LeastRequest)
	cfg.ChoiceCount = 5
	b = newBalancer(t, cfg, flat(hs), seeded(6))
	got = counts(t, b, n, nil)
	if share, want := float64(got[hs[0]])/n, 1-math.Pow(0.9, 5); math.Abs(share-want) > 0.015 {
		t.Errorf("choice_count 5: idle host share %.3f, want %.3f", share, want)
	}

	// Full scan always finds it.
	cfg.FullScan = true
	b = newBalancer(t, cfg, flat(hs), seeded(6))
	if got := counts(t, b, 100, nil); got[hs[0]] != 100 {
		t.Errorf("full scan picked the idle host %d/100 times", got[hs[0]])
	}
}

// TestLeastRequestWeighted: different weights use EDF on
// weight/(active+1)^bias.
func TestLeastRequestWeighted(t *testing.T) {
	cases := []struct {
		name   string
		bias   float64
		active [2]int64
		want   float64 // share of host 1 (weight 3; host 0 has weight 1)
	}{
		{"idle hosts follow weights", 1, [2]int64{0, 0}, 0.75},
		{"load evens weights", 1, [2]int64{0, 2}, 0.5},       // 1/1 vs 3/3
		{"bias 0 ignores load", 0, [2]int64{0, 8}, 0.75},     // like round robin
		{"bias 2 punishes load", 2, [2]int64{0, 1}, 3.0 / 7}, // 1/1 vs 3/4
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := hostsN(2, 1, 3)
			hs[0].Stats.RqActive.Store(tc.active[0])
			hs[1].Stats.RqActive.Store(tc.active[1])
			cfg := lb.DefaultConfig(lb.LeastRequest)
			cfg.ActiveRequestBias = tc.bias
			b := newBalancer(t, cfg, flat(hs), seeded(9))
			const n = 7000
			got := counts(t, b, n, nil)
			if share := float64(got[hs[1]]) / n; math.Abs(share-tc.want) > 0.01 {
				t.Errorf("heavy host share %.3f, want %.3f", share, tc.want)
			}
		})
	}
}

// TestRandomUniform: random ignores weights, as Envoy's does.
func TestRandomUniform(t *testing.T) {
	hs := hostsN(4, 1, 1, 1, 100)
	b := newBalancer(t, lb.DefaultConfig(lb.Random), flat(hs), seeded(11))
	const n = 40000
	got := counts(t, b, n, nil)
	for i, h := range hs {
		if share := float64(got[h]) / n; math.Abs(share-0.25) > 0.015 {
			t.Errorf("host %d share %.3f, want 0.25", i, share)
		}
	}
}

// TestPreviousHosts: the previous_hosts predicate re-picks.
func TestPreviousHosts(t *testing.T) {
	for _, p := range []lb.Policy{lb.RoundRobin, lb.LeastRequest, lb.Random, lb.RingHash, lb.Maglev} {
		t.Run(p.String(), func(t *testing.T) {
			hs := hostsN(3)
			b := newBalancer(t, lb.DefaultConfig(p), flat(hs), seeded(13))
			for i := range 200 {
				ctx := lb.PickContext{Hash: uint64(i) * 0x9e3779b97f4a7c15, HasHash: true, Attempt: 1,
					Previous: []*host.Host{hs[0], hs[1]}, SelectionRetries: 50}
				h, err := b.Pick(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if h != hs[2] {
					t.Fatalf("pick %d: got a previously tried host", i)
				}
			}
			// Without retries the predicate does not apply.
			h0, _ := b.Pick(lb.PickContext{Hash: 42, HasHash: true})
			h1, _ := b.Pick(lb.PickContext{Hash: 42, HasHash: true, Previous: []*host.Host{h0}})
			if (p == lb.RingHash || p == lb.Maglev) && h0 != h1 {
				t.Errorf("hash pick moved without SelectionRetries")
			}
		})
	}
}

func gcdInt(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
