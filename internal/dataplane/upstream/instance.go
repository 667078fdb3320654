package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// Options are an Instance's collaborators; all are optional.
type Options struct {
	// Now is the clock of outlier ejections (default time.Now).
	Now func() time.Time
	// Rand is the random source of balancers and outlier detection
	// (default math/rand/v2); it must be safe for concurrent use.
	Rand func() uint64
	// Logger receives ejections and host set changes (default: discard).
	Logger *slog.Logger
}

// ErrOriginalDst is returned by Pick on ORIGINAL_DST clusters: they have
// no hosts of their own, the caller connects to the downstream
// connection's original destination (or to the x-envoy-original-dst-host
// header when OriginalDst.UseHTTPHeader is set) and still takes the
// cluster's circuit breakers.
var ErrOriginalDst = errors.New("ORIGINAL_DST cluster: connect to the original destination")

// Instance is a running cluster: its hosts, balancer, outlier detector and
// circuit breakers. Pick, Report and the accessors are safe for concurrent
// use; Update is called by the EDS (or DNS) owner; Run is the cluster's
// timer goroutine.
//
//	Update(EndpointSet) ──► hosts (built by the first Pick, then kept
//	                        by address across updates) ──────────────┐
//	outlier ejection / un-ejection (OnChange) ──────────────────────┼─► stale
//	                                                                 │
//	Pick(ctx) ─► (stale: host.Set ─► new lb.Balancer) ─ Balancer.Pick ◄┘
//	Report(host, result) ─► host's outlier Monitor
type Instance struct {
	cluster  *Cluster
	rand     func() uint64
	log      *slog.Logger
	breakers [circuit.NumPriorities]*circuit.Breakers
	detector *outlier.Detector // nil without outlier detection

	// mu serializes updates, host builds and balancer rebuilds.
	mu sync.Mutex
	// eps is the current load assignment. Its hosts and groups are built
	// on demand (built): by the first Pick, like the balancer, or by the
	// first Update after that. Until then the instance keeps only the
	// compiled set: a sidecar's clusters that never carry a request keep
	// no Host (with its counters and outlier monitor) per endpoint.
	eps    *EndpointSet
	built  bool
	hosts  map[string]*host.Host
	groups []host.Group
	// balancer is built on demand: by the first Pick after the hosts or
	// their health changed (stale), not by every change. A sidecar sees
	// every service of the mesh and sends to few of them; the clusters it
	// never picks from keep no balancer. nil before the first Pick and for
	// ORIGINAL_DST.
	balancer atomic.Pointer[lb.Balancer]
	stale    atomic.Bool
	rebuilds atomic.Uint64 // balancers built
}

// New starts an instance of c, without goroutines (see Run). STATIC
// clusters get their hosts at once, as do DNS clusters whose names are IP
// literals; EDS and other DNS clusters start empty until Update.
func New(c *Cluster, opts Options) (*Instance, error) {
	if c == nil {
		return nil, errors.New("upstream: nil cluster")
	}
	in := &Instance{cluster: c, rand: opts.Rand, log: opts.Logger}
	if in.rand == nil {
		in.rand = rand.Uint64
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	for p := range circuit.NumPriorities {
		in.breakers[p] = circuit.New(c.Breakers[p])
	}
	if c.Outlier != nil {
		d, err := outlier.New(*c.Outlier, outlier.Options{Now: opts.Now, Rand: in.rand, OnChange: in.onHealthChange})
		if err != nil {
			return nil, fmt.Errorf("cluster %q: outlier_detection: %w", c.Name, err)
		}
		in.detector = d
	}
	if c.Type == OriginalDst {
		return in, nil
	}
	eps := &EndpointSet{ClusterName: c.Name, OverprovisioningFactor: host.DefaultOverprovisioningFactor}
	if c.LoadAssignment != nil && resolved(c.LoadAssignment) {
		eps = c.LoadAssignment
	}
	if err := in.Update(eps); err != nil {
		return nil, err
	}
	return in, nil
}

func resolved(eps *EndpointSet) bool {
	for _, l := range eps.Localities {
		for _, e := range l.Endpoints {
			if e.Address.Kind == host.Socket && !e.Address.IP.IsValid() {
				return false
			}
		}
	}
	return true
}

// Cluster returns the compiled cluster the instance runs.
func (in *Instance) Cluster() *Cluster { return in.cluster }

// Update replaces the cluster's endpoints (DNS names must have been
// resolved). Hosts already built are rebuilt at once (buildLocked: kept,
// new and removed hosts); otherwise the set waits for the first Pick.
func (in *Instance) Update(eps *EndpointSet) error {
	if in.cluster.Type == OriginalDst {
		return fmt.Errorf("cluster %q: ORIGINAL_DST clusters have no endpoints", in.cluster.Name)
	}
	if !resolved(eps) {
		return fmt.Errorf("cluster %q: endpoints with unresolved DNS names", in.cluster.Name)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.eps = eps
	in.stale.Store(true)
	if in.built {
		in.buildLocked()
	}
	return nil
}

// buildLocked makes the hosts of in.eps: hosts whose address is still
// present keep their counters and outlier state (Envoy's in-place update),
// new ones start fresh, removed ones leave outlier accounting and are
// marked removed (their connection pools drain). An address listed twice
// keeps its first entry. Called with mu held.
func (in *Instance) buildLocked() {
	added := 0
	next, groups := hostGroups(in.eps, func(key string, ep *host.Endpoint) *host.Host {
		if h := in.hosts[key]; h != nil {
			h.ShareEndpoint(ep)
			return h
		}
		var m *outlier.Monitor
		if in.detector != nil {
			m = in.detector.Add(key)
		}
		added++
		return host.NewShared(ep, m)
	})
	removed := 0
	for key, h := range in.hosts {
		if next[key] == nil {
			removed++
			h.MarkRemoved()
			if m := h.Outlier(); m != nil {
				in.detector.Remove(m)
			}
		}
	}
	in.hosts, in.groups, in.built = next, groups, true
	in.log.Debug("upstream hosts updated", "cluster", in.cluster.Name, "hosts", len(next), "added", added, "removed", removed)
}

// hostGroups arranges the endpoints of eps into host groups by locality
// and priority, one host per address (an address listed twice keeps its
// first entry), each made by mk from its key (the address as a string)
// and its Endpoint, which hosts share (eps is immutable).
func hostGroups(eps *EndpointSet, mk func(key string, ep *host.Endpoint) *host.Host) (map[string]*host.Host, []host.Group) {
	hosts := make(map[string]*host.Host, eps.Len())
	groups := make([]host.Group, 0, len(eps.Localities))
	for _, l := range eps.Localities {
		g := host.Group{Priority: l.Priority, Locality: l.Locality, Weight: l.Weight}
		for i := range l.Endpoints {
			ep := &l.Endpoints[i]
			key := ep.Address.String()
			if _, dup := hosts[key]; dup {
				continue
			}
			h := mk(key, ep)
			hosts[h.Key()] = h
			g.Hosts = append(g.Hosts, h)
		}
		groups = append(groups, g)
	}
	return hosts, groups
}

// current returns the balancer over the hosts' current health, building
// it when there is none yet or the hosts changed since it was built; nil
// for ORIGINAL_DST, and when no balancer could ever be built.
func (in *Instance) current() *lb.Balancer {
	if in.cluster.Type == OriginalDst {
		return nil
	}
	if b := in.balancer.Load(); b != nil && !in.stale.Load() {
		return b
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if b := in.balancer.Load(); b != nil && !in.stale.Load() {
		return b // built by a concurrent caller
	}
	// Cleared before the build: a health change while it runs marks the
	// new balancer stale again rather than being lost.
	in.stale.Store(false)
	if !in.built {
		in.buildLocked()
	}
	set := host.NewSet(in.groups, in.eps.OverprovisioningFactor, in.eps.WeightedPriorityHealth)
	b, err := lb.New(in.cluster.LB, set, lb.Options{Rand: in.rand})
	if err != nil {
		// The configuration was validated by Compile; keep the old balancer.
		in.log.Error("building load balancer", "cluster", in.cluster.Name, "error", err)
		return in.balancer.Load()
	}
	in.balancer.Store(b)
	in.rebuilds.Add(1)
	return b
}

// onHealthChange is the outlier detector's callback: the next Pick builds
// a balancer over the new health.
func (in *Instance) onHealthChange(changed []*outlier.Monitor) {
	for _, m := range changed {
		in.log.Info("outlier detection", "cluster", in.cluster.Name, "host", m.Label(), "ejected", m.Ejected())
	}
	in.stale.Store(true)
}

// Pick chooses a host for one attempt of a request. It returns
// lb.ErrNoHealthyUpstream when no host is available and ErrOriginalDst on
// ORIGINAL_DST clusters.
func (in *Instance) Pick(ctx lb.PickContext) (*host.Host, error) {
	b := in.current()
	if b == nil {
		if in.cluster.Type == OriginalDst {
			return nil, ErrOriginalDst
		}
		return nil, lb.ErrNoHealthyUpstream
	}
	return b.Pick(ctx)
}

// BalancersBuilt is how many load balancers the instance has built: one
// per first Pick after a change of its hosts or of their health.
func (in *Instance) BalancersBuilt() uint64 { return in.rebuilds.Load() }

// HostsBuilt reports whether the instance has built its hosts (the first
// Pick does; until then it keeps only the load assignment).
func (in *Instance) HostsBuilt() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.built
}

// Report feeds the result of an attempt on h to outlier detection. h must
// come from this instance's Pick.
func (in *Instance) Report(h *host.Host, r outlier.Result) {
	if m := h.Outlier(); m != nil {
		m.Put(r)
	}
}

// Breakers returns the circuit breakers of a routing priority.
func (in *Instance) Breakers(p circuit.Priority) *circuit.Breakers {
	if p >= circuit.NumPriorities {
		p = circuit.Default
	}
	return in.breakers[p]
}

// Run is the cluster's timer goroutine: it runs outlier detection's
// interval sweeps until ctx is done (without outlier detection it just
// waits for ctx). It returns nil.
func (in *Instance) Run(ctx context.Context) error {
	if in.detector == nil {
		<-ctx.Done()
		return nil
	}
	return in.detector.Run(ctx)
}

// Tick runs one outlier detection sweep at now (what Run does every
// interval); for tests and for callers that own their timers.
func (in *Instance) Tick(now time.Time) {
	if in.detector != nil {
		in.detector.Tick(now)
	}
}

// HostStatus is a host's state for the admin interface (/clusters).
type HostStatus struct {
	// Address is Addr.String(), the host's key in its cluster.
	Address   string
	Addr      host.Address `json:"-"`
	Hostname  string
	Weight    uint32
	Priority  uint32
	Locality  host.Locality
	EDSHealth corev3.HealthStatus
	Health    host.Health
	// Outlier is the outlier state; zero without outlier detection.
	Outlier outlier.State
	HostCounters
}

// HostCounters are a host's request and connection counters (Envoy's
// per-host stats), as host.Stats holds them.
type HostCounters struct {
	RqActive int64
	RqTotal  uint64
	CxActive int64
	CxTotal  uint64
	// CxConnectFail counts failed connection attempts.
	CxConnectFail uint64
}

// CountersOf reads h's counters.
func CountersOf(h *host.Host) HostCounters {
	return HostCounters{
		RqActive:      h.Stats.RqActive.Load(),
		RqTotal:       h.Stats.RqTotal.Load(),
		CxActive:      h.Stats.CxActive.Load(),
		CxTotal:       h.Stats.CxTotal.Load(),
		CxConnectFail: h.Stats.CxConnectFail.Load(),
	}
}

// viewGroupsLocked returns the host groups the admin views report: the
// built ones, or, before the first Pick, throw-away hosts made from the
// load assignment (zero counters, no outlier state), so that looking at a
// cluster does not make it keep hosts. nil for ORIGINAL_DST. Called with
// mu held.
func (in *Instance) viewGroupsLocked() []host.Group {
	if in.built || in.eps == nil {
		return in.groups
	}
	_, groups := hostGroups(in.eps, func(_ string, ep *host.Endpoint) *host.Host { return host.NewShared(ep, nil) })
	return groups
}

// Hosts returns the state of every host, in load assignment order. Hosts
// not built yet (no request so far) are reported from the load
// assignment, with zero counters.
func (in *Instance) Hosts() []HostStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []HostStatus
	for _, g := range in.viewGroupsLocked() {
		for _, h := range g.Hosts {
			ep := h.Endpoint()
			s := HostStatus{
				Address:      h.Key(),
				Addr:         h.Address(),
				Hostname:     ep.Hostname,
				Weight:       ep.Weight,
				Priority:     ep.Priority,
				Locality:     ep.Locality,
				EDSHealth:    ep.Health,
				Health:       h.Health(),
				HostCounters: CountersOf(h),
			}
			if m := h.Outlier(); m != nil {
				s.Outlier = m.State()
			}
			out = append(out, s)
		}
	}
	return out
}

// Load returns the per-priority load and panic state of the balancer
// (empty for ORIGINAL_DST clusters). For a cluster whose hosts are not
// built yet it is computed over throw-away hosts (viewGroupsLocked).
func (in *Instance) Load() lb.PriorityLoad {
	if in.cluster.Type == OriginalDst {
		return lb.PriorityLoad{}
	}
	in.mu.Lock()
	built, eps := in.built, in.eps
	var groups []host.Group
	if !built {
		groups = in.viewGroupsLocked()
	}
	in.mu.Unlock()
	if !built {
		b, err := lb.New(in.cluster.LB, host.NewSet(groups, eps.OverprovisioningFactor, eps.WeightedPriorityHealth), lb.Options{Rand: in.rand})
		if err != nil {
			return lb.PriorityLoad{}
		}
		return b.Load()
	}
	if b := in.current(); b != nil {
		return b.Load()
	}
	return lb.PriorityLoad{}
}

// OutlierStats returns the outlier detector's counters (zero without
// detection).
func (in *Instance) OutlierStats() outlier.Stats {
	if in.detector == nil {
		return outlier.Stats{}
	}
	return in.detector.Stats()
}
