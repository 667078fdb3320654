package lb_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
)

// newHost returns a healthy host at ip:port.
func newHost(ip string, port, weight uint32) *host.Host {
	return host.New(host.Endpoint{
		Address: host.Address{Kind: host.Socket, Host: ip, IP: netip.MustParseAddr(ip), Port: port},
		Weight:  weight,
	}, nil)
}

// hostsN returns n healthy hosts 10.0.<i/250>.<i%250+1>:8080 with weights
// (1 when weights is shorter).
func hostsN(n int, weights ...uint32) []*host.Host {
	out := make([]*host.Host, n)
	for i := range out {
		w := uint32(1)
		if i < len(weights) {
			w = weights[i]
		}
		out[i] = newHost(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), 8080, w)
	}
	return out
}

// setHealth changes a host's EDS health.
func setHealth(h *host.Host, s corev3.HealthStatus) {
	ep := *h.Endpoint()
	ep.Health = s
	h.SetEndpoint(ep)
}

// flat is one priority, one locality.
func flat(hs []*host.Host) *host.Set {
	return host.NewSet([]host.Group{{Hosts: hs}}, 0, false)
}

// seeded returns a deterministic random source for single-goroutine tests.
func seeded(seed uint64) lb.Options {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return lb.Options{Rand: r.Uint64}
}

func newBalancer(t testing.TB, cfg lb.Config, set *host.Set, opts lb.Options) *lb.Balancer {
	t.Helper()
	b, err := lb.New(cfg, set, opts)
	if err != nil {
		t.Fatalf("lb.New: %v", err)
	}
	return b
}

// counts picks n times and counts hosts.
func counts(t testing.TB, b *lb.Balancer, n int, ctx func(i int) lb.PickContext) map[*host.Host]int {
	t.Helper()
	out := map[*host.Host]int{}
	for i := range n {
		var c lb.PickContext
		if ctx != nil {
			c = ctx(i)
		}
		h, err := b.Pick(c)
		if err != nil {
			t.Fatalf("pick %d: %v", i, err)
		}
		out[h]++
	}
	return out
}
