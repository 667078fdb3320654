package manager

import (
	"cmp"
	"slices"
	"strings"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// ClusterStatus is a cluster as the admin interface shows it: Trellis's
// own view (the sidecar's /clusters?format=trellis) and the input of
// Envoy's two renderings, WriteEnvoyText and EnvoyJSON.
type ClusterStatus struct {
	Name string
	// ObservabilityName is alt_stat_name, else Name (Envoy's
	// observabilityName).
	ObservabilityName string
	// EDSServiceName is the name EDS assignments are requested under
	// (eds_cluster_config.service_name, else Name); empty unless Type is
	// EDS.
	EDSServiceName string
	Type           upstream.DiscoveryType
	// Policy is the load-balancing policy (meaningless for ORIGINAL_DST).
	Policy   lb.Policy
	Protocol upstream.UpstreamProtocol
	// Warming: an EDS cluster still waiting for its assignment, or a DNS
	// cluster not resolved yet.
	Warming bool
	Hosts   []HostStatus
	// Breakers are the circuit breakers' usage per routing priority.
	Breakers [circuit.NumPriorities]circuit.Stats
	Outlier  outlier.Stats
	Load     lb.PriorityLoad
}

// HostStatus is a host with its connection pools.
type HostStatus struct {
	upstream.HostStatus
	// Transport is the transport socket the host gets ("tlsMode-disabled:
	// plaintext", "default: unsupported", ...).
	Transport string
	// Pools are the host's pools that were used, by protocol and priority.
	Pools []pool.Stats
}

// Clusters returns the current clusters, sorted by name.
func (m *Manager) Clusters() []ClusterStatus {
	cur := *m.clusters.Load()
	out := make([]ClusterStatus, 0, len(cur))
	for _, e := range cur {
		out = append(out, e.status())
	}
	slices.SortFunc(out, func(a, b ClusterStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (e *entry) status() ClusterStatus {
	s := ClusterStatus{
		Name:              e.name,
		ObservabilityName: cmp.Or(e.c.AltStatName, e.name),
		EDSServiceName:    e.c.EDSServiceName,
		Type:              e.c.Type,
		Policy:            e.c.LB.Policy,
		Protocol:          e.c.HTTP.Protocol,
		Warming:           e.warming.Load(),
		Outlier:           e.in.OutlierStats(),
		Load:              e.in.Load(),
	}
	for p := range circuit.NumPriorities {
		s.Breakers[p] = e.in.Breakers(p).Stats()
	}
	var hosts []upstream.HostStatus
	if e.c.Type == upstream.OriginalDst {
		for _, hp := range e.allHosts() {
			hosts = append(hosts, origStatus(hp.h))
		}
		slices.SortFunc(hosts, func(a, b upstream.HostStatus) int { return strings.Compare(a.Address, b.Address) })
	} else {
		hosts = e.in.Hosts()
	}
	e.mu.Lock()
	byKey := make(map[string]*hostPools, len(e.byKey))
	for k, hp := range e.byKey {
		byKey[k] = hp
	}
	e.mu.Unlock()
	for _, hs := range hosts {
		st := HostStatus{HostStatus: hs}
		if hp := byKey[hs.Address]; hp != nil {
			st.Transport = e.dial.sockets.forEndpoint(hp.h.Endpoint()).label()
			hp.each(func(p *pool.Pool) { st.Pools = append(st.Pools, p.Stats()) })
		}
		s.Hosts = append(s.Hosts, st)
	}
	return s
}

func origStatus(h *host.Host) upstream.HostStatus {
	return upstream.HostStatus{
		Address:      h.Key(),
		Addr:         h.Address(),
		Weight:       h.Weight(),
		Health:       h.Health(),
		HostCounters: upstream.CountersOf(h),
	}
}
