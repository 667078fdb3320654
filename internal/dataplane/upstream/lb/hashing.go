package lb

import (
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// hashing is Envoy's ThreadAwareLoadBalancerBase: one hash table (ring or
// Maglev) per priority, built over the priority's healthy hosts, or all of
// them in panic, with normalized weights.
type hashing struct {
	loads  *loads
	tables []hashTable
	rand   func() uint64
}

type hashTable interface {
	// choose returns the host for hash; attempt > 0 moves away from the
	// first choice for the previous_hosts predicate. nil when empty.
	choose(hash uint64, attempt uint32) *host.Host
}

// weightedHost is a host with its normalized weight: all normalized weights
// of a priority sum to at most 1.
type weightedHost struct {
	h *host.Host
	w float64
}

func newHashing(cfg Config, set *host.Set, l *loads, rnd func() uint64) *hashing {
	hs := &hashing{loads: l, tables: make([]hashTable, len(set.Priorities)), rand: rnd}
	for i := range set.Priorities {
		ws, minW, maxW := normalize(&set.Priorities[i], l.panic[i], cfg.LocalityWeighted)
		if cfg.Policy == Maglev {
			hs.tables[i] = newMaglev(ws, maxW, cfg.MaglevTableSize, cfg.UseHostnameForHashing)
		} else {
			hs.tables[i] = newRing(ws, minW, cfg)
		}
	}
	return hs
}

// pick hashes with the request hash, or a random value without one (which
// makes it a random balancer, as in Envoy). The same value chooses the
// priority.
func (hs *hashing) pick(ctx *PickContext) *host.Host {
	hash := ctx.Hash
	if !ctx.HasHash {
		hash = hs.rand()
	}
	prio, _ := hs.loads.choose(hash)
	t := hs.tables[prio]
	var h *host.Host
	for attempt := range ctx.tries() {
		h = t.choose(hash, attempt)
		if h == nil || ctx.accept(h) {
			return h
		}
	}
	return h
}

// normalize is Envoy's normalizeWeights: host weights divided by their sum
// or, with locality weighting, by their locality's sum and multiplied by
// the locality's share of all locality weights (localities without weight
// are left out).
func normalize(p *host.Priority, panic, localityWeighted bool) (ws []weightedHost, minW, maxW float64) {
	minW, maxW = 1, 0
	add := func(hosts []*host.Host, share float64) {
		var sum uint64
		for _, h := range hosts {
			sum += uint64(h.Weight())
		}
		for _, h := range hosts {
			w := float64(h.Weight()) * share / float64(sum)
			ws = append(ws, weightedHost{h, w})
			minW, maxW = min(minW, w), max(maxW, w)
		}
	}
	if !localityWeighted || len(p.Localities) == 0 {
		if panic {
			add(p.Hosts, 1)
		} else {
			add(p.Healthy, 1)
		}
		return ws, minW, maxW
	}
	var total uint64
	for _, l := range p.Localities {
		total += uint64(l.Weight)
	}
	if total == 0 {
		return ws, minW, maxW
	}
	for _, l := range p.Localities {
		if l.Weight == 0 {
			continue
		}
		if panic {
			add(l.Hosts, float64(l.Weight)/float64(total))
		} else {
			add(l.Healthy, float64(l.Weight)/float64(total))
		}
	}
	return ws, minW, maxW
}
