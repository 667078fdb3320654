package lb

import (
	"sync/atomic"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// roundRobin is Envoy's round robin over one host source: a shared counter
// when all weights are equal, an EDF schedule otherwise. Like Envoy, it
// starts at a random point so that proxies do not all hit the same host
// first.
type roundRobin struct {
	hosts []*host.Host
	next  atomic.Uint64
	// Weighted: one of these.
	table *schedule
	sched *edf
}

func newRoundRobin(hosts []*host.Host, seed uint64) *roundRobin {
	rr := &roundRobin{hosts: hosts}
	rr.next.Store(seed)
	if len(hosts) < 2 || weightsEqual(hosts) {
		return rr
	}
	weights := make([]uint32, len(hosts))
	for i, h := range hosts {
		weights[i] = h.Weight()
	}
	if rr.table = newSchedule(weights, seed); rr.table == nil {
		rr.sched = newEDF(len(hosts), func(i int) float64 { return float64(weights[i]) }, seed%uint64(len(hosts)))
	}
	return rr
}

func (rr *roundRobin) pick(uint64) *host.Host {
	switch {
	case len(rr.hosts) == 0:
		return nil
	case rr.table != nil:
		return rr.hosts[rr.table.pick()]
	case rr.sched != nil:
		return rr.hosts[rr.sched.pick()]
	}
	return rr.hosts[(rr.next.Add(1)-1)%uint64(len(rr.hosts))]
}
