package lb_test

import (
	"sync"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
)

type benchCase struct {
	name     string
	policy   lb.Policy
	weighted bool
	locality bool
}

var benchCases = []benchCase{
	{"RoundRobin", lb.RoundRobin, false, false},
	{"RoundRobinWeighted", lb.RoundRobin, true, false},
	{"LeastRequest", lb.LeastRequest, false, false},
	{"LeastRequestWeighted", lb.LeastRequest, true, false},
	{"Random", lb.Random, false, false},
	{"RingHash", lb.RingHash, false, false},
	{"Maglev", lb.Maglev, false, false},
	{"RoundRobinLocalityWeighted", lb.RoundRobin, false, true},
}

// benchSet is 100 hosts in 4 localities; weighted: weights 1..5.
func benchSet(c benchCase) *host.Set {
	var weights []uint32
	if c.weighted {
		for i := range 100 {
			weights = append(weights, uint32(i%5+1))
		}
	}
	hs := hostsN(100, weights...)
	var groups []host.Group
	for i := range 4 {
		groups = append(groups, host.Group{
			Locality: host.Locality{Region: "r", Zone: string(rune('a' + i))},
			Weight:   uint32(i + 1),
			Hosts:    hs[i*25 : (i+1)*25],
		})
	}
	return host.NewSet(groups, 0, false)
}

func benchBalancer(b *testing.B, c benchCase) *lb.Balancer {
	cfg := lb.DefaultConfig(c.policy)
	cfg.LocalityWeighted = c.locality
	bal, err := lb.New(cfg, benchSet(c), lb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return bal
}

// BenchmarkPick: one pick over 100 hosts, per policy.
func BenchmarkPick(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			bal := benchBalancer(b, c)
			b.ReportAllocs()
			var i uint64
			for b.Loop() {
				i++
				if _, err := bal.Pick(lb.PickContext{Hash: i * 0x9e3779b97f4a7c15, HasHash: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPickParallel: the same from all Ps at once (contention).
func BenchmarkPickParallel(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			bal := benchBalancer(b, c)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var i uint64
				for pb.Next() {
					i++
					if _, err := bal.Pick(lb.PickContext{Hash: i * 0x9e3779b97f4a7c15, HasHash: true}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkBuild: building a balancer (what a host change costs).
func BenchmarkBuild(b *testing.B) {
	for _, c := range benchCases {
		b.Run(c.name, func(b *testing.B) {
			set := benchSet(c)
			cfg := lb.DefaultConfig(c.policy)
			cfg.LocalityWeighted = c.locality
			b.ReportAllocs()
			for b.Loop() {
				if _, err := lb.New(cfg, set, lb.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrentPick runs every policy from many goroutines while request
// counters change (run with -race).
func TestConcurrentPick(t *testing.T) {
	for _, c := range benchCases {
		t.Run(c.name, func(t *testing.T) {
			cfg := lb.DefaultConfig(c.policy)
			cfg.LocalityWeighted = c.locality
			bal, err := lb.New(cfg, benchSet(c), lb.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 2000 {
						h, err := bal.Pick(lb.PickContext{Hash: uint64(g*2000 + i), HasHash: i%2 == 0})
						if err != nil {
							t.Error(err)
							return
						}
						h.Stats.RqActive.Add(1)
						h.Stats.RqActive.Add(-1)
					}
				})
			}
			wg.Wait()
		})
	}
}
