package host

import "sort"

// DefaultOverprovisioningFactor is Envoy's overprovisioning factor, in
// percent: a priority with 1/1.4 of its hosts healthy still takes all its
// load.
const DefaultOverprovisioningFactor = 140

// Group is one locality of one priority, as a load assignment lists it
// (LocalityLbEndpoints).
type Group struct {
	Priority uint32
	Locality Locality
	// Weight is the locality's load_balancing_weight; 0 when unset.
	Weight uint32
	Hosts  []*Host
}

// Set is the hosts of a cluster by priority, with their health as it was
// when the set was built. It is immutable.
type Set struct {
	// Priorities has at least one element; priorities without hosts are
	// empty.
	Priorities []Priority
	// OverprovisioningFactor in percent (DefaultOverprovisioningFactor).
	OverprovisioningFactor uint32
	// WeightedPriorityHealth computes priority health from host weights
	// instead of host counts.
	WeightedPriorityHealth bool
}

// Priority is one priority level (Envoy's HostSet).
type Priority struct {
	Hosts    []*Host
	Healthy  []*Host
	Degraded []*Host
	// Localities in Locality.Less order.
	Localities []LocalityHosts
}

// LocalityHosts is the part of a priority in one locality.
type LocalityHosts struct {
	Locality Locality
	// Weight is the locality's weight; 0 when unset (such a locality takes
	// no traffic under locality-weighted balancing).
	Weight   uint32
	Hosts    []*Host
	Healthy  []*Host
	Degraded []*Host
}

// NewSet builds a set from groups, reading each host's health once.
// Groups of the same priority and locality are merged (the last weight
// wins, as in Envoy). overprovisioning 0 means the default.
func NewSet(groups []Group, overprovisioning uint32, weightedPriorityHealth bool) *Set {
	if overprovisioning == 0 {
		overprovisioning = DefaultOverprovisioningFactor
	}
	n := uint32(1)
	for _, g := range groups {
		n = max(n, g.Priority+1)
	}
	s := &Set{
		Priorities:             make([]Priority, n),
		OverprovisioningFactor: overprovisioning,
		WeightedPriorityHealth: weightedPriorityHealth,
	}
	type key struct {
		priority uint32
		locality Locality
	}
	index := map[key]int{}
	for _, g := range groups {
		p := &s.Priorities[g.Priority]
		k := key{g.Priority, g.Locality}
		i, ok := index[k]
		if !ok {
			i = len(p.Localities)
			index[k] = i
			p.Localities = append(p.Localities, LocalityHosts{Locality: g.Locality})
		}
		l := &p.Localities[i]
		l.Weight = g.Weight
		for _, h := range g.Hosts {
			p.Hosts = append(p.Hosts, h)
			l.Hosts = append(l.Hosts, h)
			switch h.Health() {
			case Healthy:
				p.Healthy = append(p.Healthy, h)
				l.Healthy = append(l.Healthy, h)
			case Degraded:
				p.Degraded = append(p.Degraded, h)
				l.Degraded = append(l.Degraded, h)
			}
		}
	}
	for i := range s.Priorities {
		ls := s.Priorities[i].Localities
		sort.SliceStable(ls, func(a, b int) bool { return ls[a].Locality.Less(ls[b].Locality) })
	}
	return s
}

// Len returns the number of hosts in all priorities.
func (s *Set) Len() int {
	n := 0
	for i := range s.Priorities {
		n += len(s.Priorities[i].Hosts)
	}
	return n
}
