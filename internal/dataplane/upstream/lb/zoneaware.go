package lb

import (
	"math"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// zoneAware is Envoy's ZoneAwareLoadBalancerBase with its EDF subclasses:
// the balancer of round robin, least request and random. Each priority has
// one source of hosts per Envoy HostsSource (all, healthy, degraded, and
// per locality), each with its own per-policy state.
type zoneAware struct {
	loads            *loads
	priorities       []zonePriority
	localityWeighted bool
	rand             func() uint64
}

type zonePriority struct {
	all, healthy, degraded source
	localityHealthy        []source
	localityDegraded       []source
	// healthyLocality and degradedLocality pick a locality by effective
	// weight; nil when locality weighting is off or no locality qualifies.
	healthyLocality  *localityPicker
	degradedLocality *localityPicker
}

// localityPicker picks the index of a locality of a priority.
type localityPicker struct {
	sched *edf
	index []int // scheduler entry → locality index
}

func (l *localityPicker) pick() int { return l.index[l.sched.pick()] }

// source picks among a fixed list of hosts; r is the random value the
// pick's priority was chosen with.
type source interface {
	pick(r uint64) *host.Host
}

func newZoneAware(cfg Config, set *host.Set, l *loads, rnd func() uint64) *zoneAware {
	z := &zoneAware{loads: l, localityWeighted: cfg.LocalityWeighted, rand: rnd}
	newSource := func(hosts []*host.Host) source {
		switch cfg.Policy {
		case LeastRequest:
			return newLeastRequest(hosts, cfg, rnd)
		case Random:
			return randomSource(hosts)
		}
		return newRoundRobin(hosts, rnd())
	}
	z.priorities = make([]zonePriority, len(set.Priorities))
	for i := range set.Priorities {
		p, zp := &set.Priorities[i], &z.priorities[i]
		zp.all, zp.healthy, zp.degraded = newSource(p.Hosts), newSource(p.Healthy), newSource(p.Degraded)
		if !cfg.LocalityWeighted {
			continue
		}
		for _, l := range p.Localities {
			zp.localityHealthy = append(zp.localityHealthy, newSource(l.Healthy))
			zp.localityDegraded = append(zp.localityDegraded, newSource(l.Degraded))
		}
		zp.healthyLocality = localityScheduler(p, len(p.Healthy), func(l *host.LocalityHosts) int { return len(l.Healthy) }, set.OverprovisioningFactor, rnd())
		zp.degradedLocality = localityScheduler(p, len(p.Degraded), func(l *host.LocalityHosts) int { return len(l.Degraded) }, set.OverprovisioningFactor, rnd())
	}
	return z
}

// localityScheduler is Envoy's LocalityWrr: an EDF over the localities of a
// priority with effective weight = weight × min(1, factor × eligible/all).
// Localities with no weight or no eligible host are left out.
func localityScheduler(p *host.Priority, eligible int, count func(*host.LocalityHosts) int, factor uint32, seed uint64) *localityPicker {
	if eligible == 0 {
		return nil
	}
	var index []int
	var weights []float64
	for i := range p.Localities {
		l := &p.Localities[i]
		if len(l.Hosts) == 0 {
			continue
		}
		ratio := math.Min(1, float64(factor)/100*float64(count(l))/float64(len(l.Hosts)))
		if w := float64(l.Weight) * ratio; w > 0 {
			index = append(index, i)
			weights = append(weights, w)
		}
	}
	if len(index) == 0 {
		return nil
	}
	return &localityPicker{
		sched: newEDF(len(index), func(i int) float64 { return weights[i] }, seed%uint64(len(index))),
		index: index,
	}
}

func (z *zoneAware) pick(ctx *PickContext) *host.Host {
	var h *host.Host
	for range ctx.tries() {
		h = z.pickOnce()
		if h == nil || ctx.accept(h) {
			return h
		}
	}
	return h
}

// pickOnce is Envoy's hostSourceToUse followed by the policy's pick.
func (z *zoneAware) pickOnce() *host.Host {
	r := z.rand()
	prio, degraded := z.loads.choose(r)
	zp := &z.priorities[prio]
	if z.loads.panic[prio] {
		return zp.all.pick(r)
	}
	if z.localityWeighted {
		if degraded && zp.degradedLocality != nil {
			return zp.localityDegraded[zp.degradedLocality.pick()].pick(r)
		}
		if !degraded && zp.healthyLocality != nil {
			return zp.localityHealthy[zp.healthyLocality.pick()].pick(r)
		}
	}
	if degraded {
		return zp.degraded.pick(r)
	}
	return zp.healthy.pick(r)
}

// randomSource is Envoy's random balancer: the pick's random value modulo
// the number of hosts, weights ignored.
type randomSource []*host.Host

func (s randomSource) pick(r uint64) *host.Host {
	if len(s) == 0 {
		return nil
	}
	return s[r%uint64(len(s))]
}

func weightsEqual(hosts []*host.Host) bool {
	for _, h := range hosts[min(1, len(hosts)):] {
		if h.Weight() != hosts[0].Weight() {
			return false
		}
	}
	return true
}
