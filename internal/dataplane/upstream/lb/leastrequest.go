package lb

import (
	"math"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// leastRequest is Envoy's least request over one host source. With equal
// weights it samples choice_count hosts at random and keeps the one with
// the fewest active requests (power of two choices). With different
// weights it runs an EDF schedule whose weights are
// weight / (active requests + 1)^active_request_bias, re-read each time a
// host is picked, so loaded hosts come up less often but never drain
// completely.
type leastRequest struct {
	hosts    []*host.Host
	choices  uint32
	fullScan bool
	rand     func() uint64
	sched    *edf
}

func newLeastRequest(hosts []*host.Host, cfg Config, rnd func() uint64) *leastRequest {
	lr := &leastRequest{hosts: hosts, choices: cfg.ChoiceCount, fullScan: cfg.FullScan, rand: rnd}
	if len(hosts) < 2 || weightsEqual(hosts) {
		return lr
	}
	weights := make([]float64, len(hosts))
	for i, h := range hosts {
		weights[i] = float64(h.Weight())
	}
	bias := cfg.ActiveRequestBias
	lr.sched = newEDF(len(hosts), func(i int) float64 {
		active := float64(max(hosts[i].Stats.RqActive.Load(), 0)) + 1
		switch bias {
		case 0:
			return weights[i]
		case 1:
			return weights[i] / active
		}
		return weights[i] / math.Pow(active, bias)
	}, rnd()%uint64(len(hosts)))
	return lr
}

func (lr *leastRequest) pick(uint64) *host.Host {
	n := uint64(len(lr.hosts))
	switch {
	case n == 0:
		return nil
	case lr.sched != nil:
		return lr.hosts[lr.sched.pick()]
	case lr.fullScan:
		return lr.scan()
	}
	var best *host.Host
	var bestActive int64
	for range lr.choices {
		h := lr.hosts[lr.rand()%n]
		if a := h.Stats.RqActive.Load(); best == nil || a < bestActive {
			best, bestActive = h, a
		}
	}
	return best
}

// scan returns a host with the fewest active requests, chosen uniformly
// among ties by reservoir sampling (Envoy's unweightedHostPickFullScan).
func (lr *leastRequest) scan() *host.Host {
	var best *host.Host
	var bestActive int64
	ties := uint64(0)
	for _, h := range lr.hosts {
		a := h.Stats.RqActive.Load()
		switch {
		case best == nil || a < bestActive:
			best, bestActive, ties = h, a, 1
		case a == bestActive:
			ties++
			if lr.rand()%ties == 0 {
				best = h
			}
		}
	}
	return best
}
