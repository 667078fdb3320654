package lb

import "github.com/trellismesh/trellis/internal/dataplane/upstream/host"

// loads is Envoy's LoadBalancerBase state: how much of the traffic goes to
// the healthy and to the degraded hosts of each priority, and which
// priorities are in panic.
type loads struct {
	healthy  []uint32
	degraded []uint32
	panic    []bool
}

// computeLoads follows recalculatePerPriorityState, recalculatePerPriority
// Panic and recalculateLoadInTotalPanic.
func computeLoads(set *host.Set, panicThreshold uint32) loads {
	n := len(set.Priorities)
	l := loads{healthy: make([]uint32, n), degraded: make([]uint32, n), panic: make([]bool, n)}
	health := make([]uint32, n)
	degraded := make([]uint32, n)
	factor := uint64(set.OverprovisioningFactor)
	for i := range set.Priorities {
		p := &set.Priorities[i]
		if len(p.Hosts) == 0 {
			continue
		}
		var healthyW, degradedW, totalW uint64
		if set.WeightedPriorityHealth {
			healthyW, degradedW, totalW = sumWeights(p.Healthy), sumWeights(p.Degraded), sumWeights(p.Hosts)
		} else {
			healthyW, degradedW, totalW = uint64(len(p.Healthy)), uint64(len(p.Degraded)), uint64(len(p.Hosts))
		}
		// Health is the healthy share × the overprovisioning factor, capped
		// at 100: with 1.4, a priority with 72% of its hosts up keeps all
		// its traffic.
		health[i] = uint32(min(100, factor*healthyW/totalW))
		degraded[i] = uint32(min(100, factor*degradedW/totalW))
	}
	total := normalizedTotal(health, degraded)
	if total > 0 {
		firstHealthy, rest := distribute(l.healthy, health, 100, total)
		firstDegraded, rest := distribute(l.degraded, degraded, rest, total)
		// Rounding leftovers go to the first available priority.
		if rest > 0 {
			if firstHealthy >= 0 {
				l.healthy[firstHealthy] += rest
			} else if firstDegraded >= 0 {
				l.degraded[firstDegraded] += rest
			}
		}
	}

	threshold := min(panicThreshold, 100)
	if threshold == 0 && total == 0 {
		// Panic is off and nothing is available: the loads must still sum
		// to 100; P0 gets it and finds no host.
		l.healthy[0] = 100
		return l
	}
	totalPanic := true
	for i := range set.Priorities {
		// Never panic while the priorities together have enough healthy
		// hosts.
		l.panic[i] = total < 100 && inPanic(&set.Priorities[i], threshold)
		totalPanic = totalPanic && l.panic[i]
	}
	if totalPanic {
		loadInTotalPanic(set, &l)
	}
	return l
}

func sumWeights(hosts []*host.Host) uint64 {
	var s uint64
	for _, h := range hosts {
		s += uint64(h.Weight())
	}
	return s
}

func normalizedTotal(health, degraded []uint32) uint32 {
	var sum uint32
	for i := range health {
		sum += health[i] + degraded[i]
	}
	return min(sum, 100)
}

// distribute gives each priority availability × 100 / total of the load
// left, in priority order; it returns the first priority with any
// availability (-1 if none) and the load left over.
func distribute(load, availability []uint32, left, total uint32) (first int, rest uint32) {
	first = -1
	for i, a := range availability {
		if first < 0 && a > 0 {
			first = i
		}
		load[i] = min(left, a*100/total)
		left -= load[i]
	}
	return first, left
}

// inPanic: the share of healthy plus degraded hosts is below the
// threshold (an empty priority is always in panic when panic is on).
func inPanic(p *host.Priority, threshold uint32) bool {
	n := len(p.Hosts)
	var usable float64
	if n > 0 {
		usable = 100*float64(len(p.Healthy))/float64(n) + 100*float64(len(p.Degraded))/float64(n)
	}
	return usable < float64(threshold)
}

// loadInTotalPanic: every priority is in panic, so load follows the number
// of hosts, healthy or not.
func loadInTotalPanic(set *host.Set, l *loads) {
	total := set.Len()
	clear(l.degraded)
	if total == 0 {
		clear(l.healthy)
		l.healthy[0] = 100
		return
	}
	left := uint32(100)
	firstNonEmpty := -1
	for i := range set.Priorities {
		n := len(set.Priorities[i].Hosts)
		if firstNonEmpty < 0 && n > 0 {
			firstNonEmpty = i
		}
		l.healthy[i] = uint32(100 * n / total)
		left -= l.healthy[i]
	}
	l.healthy[firstNonEmpty] += left
}

// choose is Envoy's choosePriority: hash % 100 + 1 falls into the
// cumulative healthy loads, then the degraded ones.
func (l *loads) choose(hash uint64) (priority int, degraded bool) {
	h := uint32(hash%100) + 1
	var acc uint32
	for i, v := range l.healthy {
		acc += v
		if h <= acc {
			return i, false
		}
	}
	for i, v := range l.degraded {
		acc += v
		if h <= acc {
			return i, true
		}
	}
	return 0, false
}
