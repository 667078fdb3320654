package lb_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
)

// level describes one priority: host counts by health, and weights.
type level struct {
	healthy, degraded, unhealthy int
}

func levels(ls ...level) (*host.Set, [][]*host.Host) {
	var groups []host.Group
	var all [][]*host.Host
	n := 0
	for p, l := range ls {
		hs := hostsN(n + l.healthy + l.degraded + l.unhealthy)[n:]
		n += len(hs)
		for i, h := range hs {
			switch {
			case i >= l.healthy+l.degraded:
				setHealth(h, corev3.HealthStatus_UNHEALTHY)
			case i >= l.healthy:
				setHealth(h, corev3.HealthStatus_DEGRADED)
			}
		}
		groups = append(groups, host.Group{Priority: uint32(p), Hosts: hs})
		all = append(all, hs)
	}
	return host.NewSet(groups, 0, false), all
}

// TestPriorityLoad pins Envoy's per-priority load: health = healthy share ×
// 1.4 capped at 100, spilled over in priority order, degraded hosts after
// healthy ones, and panic / total panic.
func TestPriorityLoad(t *testing.T) {
	cases := []struct {
		name      string
		levels    []level
		threshold uint32
		healthy   []uint32
		degraded  []uint32
		panic     []bool
	}{
		{"all healthy", []level{{10, 0, 0}}, 50, []uint32{100}, []uint32{0}, []bool{false}},
		{"72% healthy is enough (overprovisioning 1.4)", []level{{8, 0, 2}, {10, 0, 0}}, 50,
			[]uint32{100, 0}, []uint32{0, 0}, []bool{false, false}},
		{"half healthy spills 30% to P1", []level{{5, 0, 5}, {10, 0, 0}}, 50,
			[]uint32{70, 30}, []uint32{0, 0}, []bool{false, false}},
		{"P0 down fails over to P1", []level{{0, 0, 4}, {3, 0, 0}}, 50,
			[]uint32{0, 100}, []uint32{0, 0}, []bool{false, false}},
		{"empty P0", []level{{0, 0, 0}, {3, 0, 0}}, 50,
			[]uint32{0, 100}, []uint32{0, 0}, []bool{false, false}},
		// Envoy's comment in recalculatePerPriorityState: 10/20/10% health
		// and 20/10/0% degraded give 16/28/14 healthy and 28/14/0 degraded
		// (panic off: every priority is under 50% usable).
		{"envoy example with degraded", []level{{1, 2, 11}, {2, 1, 11}, {1, 0, 13}}, 0,
			[]uint32{16, 28, 14}, []uint32{28, 14, 0}, []bool{false, false, false}},
		{"one priority in panic", []level{{2, 0, 8}}, 50,
			[]uint32{100}, []uint32{0}, []bool{true}},
		{"exactly at the threshold is not panic", []level{{5, 0, 5}}, 50,
			[]uint32{100}, []uint32{0}, []bool{false}},
		{"total panic loads by host count", []level{{1, 0, 9}, {1, 0, 29}}, 50,
			[]uint32{25, 75}, []uint32{0, 0}, []bool{true, true}},
		{"nothing healthy, panic off", []level{{0, 0, 3}, {0, 0, 3}}, 0,
			[]uint32{100, 0}, []uint32{0, 0}, []bool{false, false}},
		{"enough health overall: no panic at a weak priority", []level{{1, 0, 9}, {10, 0, 0}}, 50,
			[]uint32{14, 86}, []uint32{0, 0}, []bool{false, false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, _ := levels(tc.levels...)
			cfg := lb.DefaultConfig(lb.RoundRobin)
			cfg.PanicThreshold = tc.threshold
			got := newBalancer(t, cfg, set, seeded(1)).Load()
			if !slices.Equal(got.Healthy, tc.healthy) || !slices.Equal(got.Degraded, tc.degraded) {
				t.Errorf("load healthy %v degraded %v, want %v %v", got.Healthy, got.Degraded, tc.healthy, tc.degraded)
			}
			if !slices.Equal(got.Panic, tc.panic) {
				t.Errorf("panic %v, want %v", got.Panic, tc.panic)
			}
		})
	}
}

func TestWeightedPriorityHealth(t *testing.T) {
	hs := hostsN(3, 1, 1, 8)
	setHealth(hs[2], corev3.HealthStatus_UNHEALTHY)
	backup := hostsN(4)[3:]
	groups := []host.Group{{Priority: 0, Hosts: hs}, {Priority: 1, Hosts: backup}}
	for _, tc := range []struct {
		weighted bool
		want     []uint32
	}{
		{false, []uint32{93, 7}}, // 140 × 2/3
		{true, []uint32{28, 72}}, // 140 × 2/10
	} {
		b := newBalancer(t, lb.DefaultConfig(lb.RoundRobin), host.NewSet(groups, 0, tc.weighted), seeded(1))
		if got := b.Load().Healthy; !slices.Equal(got, tc.want) {
			t.Errorf("weighted=%v: load %v, want %v", tc.weighted, got, tc.want)
		}
	}
}

// TestFailoverAndPanicPicks checks where picks land for every policy.
func TestFailoverAndPanicPicks(t *testing.T) {
	policies := []lb.Policy{lb.RoundRobin, lb.LeastRequest, lb.Random, lb.RingHash, lb.Maglev}
	for _, p := range policies {
		t.Run(p.String(), func(t *testing.T) {
			ctx := func(i int) lb.PickContext {
				return lb.PickContext{Hash: uint64(i) * 0x9e3779b97f4a7c15, HasHash: i%2 == 0}
			}
			// P0 down: everything goes to P1.
			set, hs := levels(level{0, 0, 3}, level{2, 0, 0})
			got := counts(t, newBalancer(t, lb.DefaultConfig(p), set, seeded(2)), 1000, ctx)
			if got[hs[1][0]]+got[hs[1][1]] != 1000 {
				t.Errorf("failover: %d/1000 picks on P1", got[hs[1][0]]+got[hs[1][1]])
			}

			// Half of P0 up: 70% stays on its healthy hosts.
			set, hs = levels(level{5, 0, 5}, level{5, 0, 0})
			got = counts(t, newBalancer(t, lb.DefaultConfig(p), set, seeded(2)), 10000, ctx)
			p0 := 0
			for _, h := range hs[0] {
				if h.Health() != host.Healthy && got[h] > 0 {
					t.Errorf("unhealthy P0 host picked %d times", got[h])
				}
				p0 += got[h]
			}
			if share := float64(p0) / 10000; math.Abs(share-0.7) > 0.03 {
				t.Errorf("P0 share %.3f, want 0.70", share)
			}

			// Panic: 2 of 10 healthy; all 10 take traffic.
			set, hs = levels(level{2, 0, 8})
			got = counts(t, newBalancer(t, lb.DefaultConfig(p), set, seeded(2)), 10000, ctx)
			for i, h := range hs[0] {
				if got[h] == 0 {
					t.Errorf("panic mode: host %d (%s) never picked", i, h.Health())
				}
			}

			// Panic disabled: only healthy hosts; none healthy is an error.
			cfg := lb.DefaultConfig(p)
			cfg.PanicThreshold = 0
			got = counts(t, newBalancer(t, cfg, set, seeded(2)), 1000, ctx)
			if got[hs[0][0]]+got[hs[0][1]] != 1000 {
				t.Errorf("panic off: picked unhealthy hosts")
			}
			set, _ = levels(level{0, 0, 3})
			if _, err := newBalancer(t, cfg, set, seeded(2)).Pick(ctx(0)); !errors.Is(err, lb.ErrNoHealthyUpstream) {
				t.Errorf("no healthy host, panic off: err %v", err)
			}
			if _, err := newBalancer(t, lb.DefaultConfig(p), host.NewSet(nil, 0, false), seeded(2)).Pick(ctx(0)); !errors.Is(err, lb.ErrNoHealthyUpstream) {
				t.Errorf("empty cluster: err %v", err)
			}
		})
	}
}

// TestRingHashFailoverEnvoy replays Envoy's RingHashFailoverTest: with P0
// at 70% load, hash 69 stays on P0 and hash 71 goes to P1.
func TestRingHashFailoverEnvoy(t *testing.T) {
	set, hs := levels(level{1, 0, 1}, level{1, 0, 0})
	cfg := lb.DefaultConfig(lb.RingHash)
	cfg.MinRingSize = 12
	b := newBalancer(t, cfg, set, seeded(1))
	if h := pickHash(t, b, 69); h != hs[0][0] {
		t.Errorf("hash 69: got %s, want P0", h.Key())
	}
	if h := pickHash(t, b, 71); h != hs[1][0] {
		t.Errorf("hash 71: got %s, want P1", h.Key())
	}
}

// TestLocalityWeighted: with locality_weighted_lb_config a locality is
// chosen by weight × min(1, 1.4 × healthy share), then a host in it.
func TestLocalityWeighted(t *testing.T) {
	a, bHosts := hostsN(2), hostsN(6)[2:]
	locA := host.Locality{Region: "us-east", Zone: "a"}
	locB := host.Locality{Region: "us-east", Zone: "b"}
	build := func(weightA, weightB uint32) *host.Set {
		return host.NewSet([]host.Group{
			{Locality: locB, Weight: weightB, Hosts: bHosts},
			{Locality: locA, Weight: weightA, Hosts: a},
		}, 0, false)
	}
	shareA := func(t *testing.T, p lb.Policy, set *host.Set, weighted bool) float64 {
		cfg := lb.DefaultConfig(p)
		cfg.LocalityWeighted = weighted
		got := counts(t, newBalancer(t, cfg, set, seeded(4)), 20000, nil)
		return float64(got[a[0]]+got[a[1]]) / 20000
	}
	for _, p := range []lb.Policy{lb.RoundRobin, lb.LeastRequest, lb.Random} {
		t.Run(p.String(), func(t *testing.T) {
			if s := shareA(t, p, build(1, 3), true); math.Abs(s-0.25) > 0.02 {
				t.Errorf("weights 1:3: locality A share %.3f, want 0.25", s)
			}
			if s := shareA(t, p, build(1, 3), false); math.Abs(s-2.0/6) > 0.02 {
				t.Errorf("not locality weighted: A share %.3f, want host share 0.33", s)
			}
			if s := shareA(t, p, build(0, 0), true); math.Abs(s-2.0/6) > 0.02 {
				t.Errorf("no locality weights: A share %.3f, want host share 0.33", s)
			}
		})
	}
	// Two of B's four hosts down: B's effective weight is 3 × min(1, 1.4 × 0.5) = 2.1.
	setHealth(bHosts[0], corev3.HealthStatus_UNHEALTHY)
	setHealth(bHosts[1], corev3.HealthStatus_DRAINING)
	defer setHealth(bHosts[0], corev3.HealthStatus_HEALTHY)
	defer setHealth(bHosts[1], corev3.HealthStatus_HEALTHY)
	if s := shareA(t, lb.RoundRobin, build(1, 3), true); math.Abs(s-1/3.1) > 0.02 {
		t.Errorf("degraded locality: A share %.3f, want %.3f", s, 1/3.1)
	}
	// Hash balancers weight hosts by locality weight / its hosts.
	cfg := lb.DefaultConfig(lb.Maglev)
	cfg.LocalityWeighted = true
	set := build(1, 3)
	b := newBalancer(t, cfg, set, seeded(4))
	got := map[*host.Host]int{}
	for i := range 20000 {
		got[pickHash(t, b, uint64(i)*0x9e3779b97f4a7c15)]++
	}
	if s := float64(got[a[0]]+got[a[1]]) / 20000; math.Abs(s-0.25) > 0.03 {
		t.Errorf("maglev locality weighted: A share %.3f, want 0.25", s)
	}
}

// TestDegradedHosts: degraded hosts take traffic only when healthy ones
// lack capacity.
func TestDegradedHosts(t *testing.T) {
	set, hs := levels(level{0, 3, 0})
	b := newBalancer(t, lb.DefaultConfig(lb.RoundRobin), set, seeded(1))
	if l := b.Load(); !slices.Equal(l.Degraded, []uint32{100}) {
		t.Fatalf("load %+v", l)
	}
	got := counts(t, b, 30, nil)
	for _, h := range hs[0] {
		if got[h] != 10 {
			t.Errorf("degraded host picked %d/30", got[h])
		}
	}
}
