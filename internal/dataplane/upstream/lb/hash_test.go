package lb_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
)

// envoyHosts are the hosts of Envoy's ring hash and Maglev unit tests:
// 127.0.0.1:<first..first+5>, hostnames "<port>".
func envoyHosts(first uint32) []*host.Host {
	var hs []*host.Host
	for port := first; port < first+6; port++ {
		h := newHost("127.0.0.1", port, 1)
		ep := *h.Endpoint()
		ep.Hostname = fmt.Sprint(port)
		h.SetEndpoint(ep)
		hs = append(hs, h)
	}
	return hs
}

func pickHash(t *testing.T, b *lb.Balancer, hash uint64) *host.Host {
	t.Helper()
	h, err := b.Pick(lb.PickContext{Hash: hash, HasHash: true})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRingHashEnvoyCompatible replays Envoy's RingHashLoadBalancerTest
// Basic, BasicWithMurmur2 and BasicWithHostname: same hosts, same ring
// positions, same picks.
func TestRingHashEnvoyCompatible(t *testing.T) {
	type pick struct {
		hash uint64
		host int
	}
	cases := []struct {
		name        string
		first       uint32
		murmur      bool
		useHostname bool
		picks       []pick
	}{
		{"xxhash", 90, false, false, []pick{
			{0, 4}, {math.MaxUint64, 4}, {3551244743356806947, 5}, {3551244743356806948, 3},
			{16117243373044804880, 0}, {833437586790550860, 4}, {928266305478181108, 2},
		}},
		{"murmur2", 80, true, false, []pick{
			{0, 5}, {math.MaxUint64, 5}, {1358027074129602068, 5}, {1358027074129602069, 3},
			{10150910876324007730, 2}, {17613279263364193813, 0},
		}},
		{"hostname", 90, false, true, []pick{
			{0, 5}, {math.MaxUint64, 5}, {7225015537174310577, 2}, {6803900775736438537, 3},
			{15364271037087512980, 4}, {13723418369486627818, 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hs := envoyHosts(tc.first)
			cfg := lb.DefaultConfig(lb.RingHash)
			cfg.MinRingSize = 12
			cfg.UseHostnameForHashing = tc.useHostname
			if tc.murmur {
				cfg.HashFunction = lb.MurmurHash2
			}
			b := newBalancer(t, cfg, flat(hs), seeded(1))
			for _, p := range tc.picks {
				if got := pickHash(t, b, p.hash); got != hs[p.host] {
					t.Errorf("hash %d: got %s, want %s", p.hash, got.Key(), hs[p.host].Key())
				}
			}
		})
	}
}

// TestMaglevEnvoyCompatible replays Envoy's MaglevLoadBalancerTest Basic
// and BasicWithHostName (table size 7).
func TestMaglevEnvoyCompatible(t *testing.T) {
	for _, tc := range []struct {
		useHostname bool
		want        []int
	}{
		{false, []int{2, 4, 0, 1, 5, 0, 3}},
		{true, []int{2, 5, 0, 3, 4, 1, 0}},
	} {
		t.Run(fmt.Sprint("hostname=", tc.useHostname), func(t *testing.T) {
			hs := envoyHosts(90)
			cfg := lb.DefaultConfig(lb.Maglev)
			cfg.MaglevTableSize = 7
			cfg.UseHostnameForHashing = tc.useHostname
			b := newBalancer(t, cfg, flat(hs), seeded(1))
			for i := range 3 * len(tc.want) {
				if got, want := pickHash(t, b, uint64(i)), hs[tc.want[i%len(tc.want)]]; got != want {
					t.Errorf("hash %d: got %s, want %s", i, got.Key(), want.Key())
				}
			}
		})
	}
}

// TestConsistentHashing: the same key always reaches the same host, keys
// spread evenly, and removing a host moves few keys.
//
// Envoy sizes the ring so that the lightest host gets
// ceil(min_ring_size × its weight) points. With 100 hosts and the default
// 1024 that is 11 points each before and after a removal, so (up to float
// rounding of the running sums) only the removed host's keys move — but 11
// points per host spread load poorly, hence the larger ring for the spread
// check. With 20 hosts the count goes from 52 to 54 points per host and
// the new points take keys between remaining hosts: about 1/N more. Maglev
// (Envoy's permutation, table 65537) moves about 1.6/N.
func TestConsistentHashing(t *testing.T) {
	const keys = 200000
	cases := []struct {
		policy  lb.Policy
		n       int
		minRing uint64
		// maxMoved and maxOthers bound the moved keys, and those of them
		// that were not on the removed host, in units of 1/n.
		maxMoved, maxOthers float64
		// maxImbalance bounds |share/fair - 1|; 0 skips the check.
		maxImbalance float64
	}{
		{lb.RingHash, 100, lb.DefaultMinRingSize, 1.5, 0.1, 0},
		{lb.RingHash, 100, 100 * 1024, 2.5, 1.5, 0.15},
		{lb.RingHash, 20, lb.DefaultMinRingSize, 2, 1, 0.4},
		{lb.Maglev, 100, 0, 2, 1, 0.1},
		{lb.Maglev, 20, 0, 2, 1, 0.05},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%d hosts/ring %d", tc.policy, tc.n, tc.minRing), func(t *testing.T) {
			hs := hostsN(tc.n)
			cfg := lb.DefaultConfig(tc.policy)
			if tc.minRing > 0 {
				cfg.MinRingSize = tc.minRing
			}
			b := newBalancer(t, cfg, flat(hs), seeded(1))
			r := rand.New(rand.NewPCG(1, 2))
			hashes := make([]uint64, keys)
			before := make([]*host.Host, keys)
			load := map[*host.Host]int{}
			for i := range hashes {
				hashes[i] = r.Uint64()
				before[i] = pickHash(t, b, hashes[i])
				load[before[i]]++
				if again := pickHash(t, b, hashes[i]); again != before[i] {
					t.Fatalf("key %d moved between two picks", i)
				}
			}
			worst := 0.0
			for _, h := range hs {
				worst = max(worst, math.Abs(float64(load[h])*float64(tc.n)/keys-1))
			}
			if tc.maxImbalance > 0 && worst > tc.maxImbalance {
				t.Errorf("a host is %.0f%% off its fair share, want ≤ %.0f%%", 100*worst, 100*tc.maxImbalance)
			}

			removed := hs[7]
			rest := append(append([]*host.Host{}, hs[:7]...), hs[8:]...)
			b2 := newBalancer(t, cfg, flat(rest), seeded(1))
			moved, movedOthers := 0, 0
			for i, hash := range hashes {
				after := pickHash(t, b2, hash)
				if after == removed {
					t.Fatalf("removed host still picked")
				}
				if after != before[i] {
					moved++
					if before[i] != removed {
						movedOthers++
					}
				}
			}
			unit := float64(keys) / float64(tc.n)
			if float64(moved) >= tc.maxMoved*unit {
				t.Errorf("%d keys moved, want < %.0f (%.1f/N)", moved, tc.maxMoved*unit, tc.maxMoved)
			}
			if float64(movedOthers) >= tc.maxOthers*unit {
				t.Errorf("%d keys of remaining hosts moved, want < %.0f", movedOthers, tc.maxOthers*unit)
			}
			t.Logf("worst host %.0f%% off fair share; removing 1 host moved %.2f/N of keys (%.2f/N from remaining hosts)",
				100*worst, float64(moved)/unit, float64(movedOthers)/unit)
		})
	}
}

// TestHashWeights: weights scale a host's share of the ring/table.
func TestHashWeights(t *testing.T) {
	for _, p := range []lb.Policy{lb.RingHash, lb.Maglev} {
		t.Run(p.String(), func(t *testing.T) {
			hs := hostsN(4, 1, 1, 1, 5)
			b := newBalancer(t, lb.DefaultConfig(p), flat(hs), seeded(1))
			r := rand.New(rand.NewPCG(3, 4))
			const keys = 40000
			load := map[*host.Host]int{}
			for range keys {
				load[pickHash(t, b, r.Uint64())]++
			}
			if share := float64(load[hs[3]]) / keys; math.Abs(share-5.0/8) > 0.05 {
				t.Errorf("weight-5 host share %.3f, want %.3f", share, 5.0/8)
			}
		})
	}
}

// TestRingSize follows Envoy's scale: the lightest host gets
// ceil(min_ring_size × weight) points; max_ring_size caps the ring.
func TestRingSize(t *testing.T) {
	hs := hostsN(3, 1, 2, 1)
	cfg := lb.DefaultConfig(lb.RingHash)
	cfg.MinRingSize, cfg.MaxRingSize = 10, 1000
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg.MinRingSize, cfg.MaxRingSize = 20, 10
	if err := cfg.Validate(); err == nil || err.Error() != "ring hash: minimum_ring_size (20) > maximum_ring_size (10)" {
		t.Errorf("Validate: %v", err)
	}
	cfg = lb.DefaultConfig(lb.Maglev)
	cfg.MaglevTableSize = 8
	if err := cfg.Validate(); err == nil || err.Error() != "The table size of maglev must be prime number" {
		t.Errorf("Validate: %v", err)
	}
	_ = hs
}
