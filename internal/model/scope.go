package model

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// Scope is what one proxy may see, after exportTo and Sidecar egress
// scoping: the services it can reach, the VirtualServices that shape its
// outbound routes, and DestinationRule lookup with Istio's precedence.
type Scope struct {
	snap      *Snapshot
	proxy     *Proxy
	Namespace string
	// Sidecar is the Sidecar resource in force (nil: mesh default, "*/*").
	Sidecar *config.Config
	// Services visible to the proxy, sorted by host.
	Services []*Service
	byHost   map[string]*Service
	// VirtualServices are the visible mesh-bound root VirtualServices, in
	// Istio's order (oldest first).
	VirtualServices []config.Config
}

// EgressHost is one parsed "namespace/host" entry of a Sidecar egress listener.
type EgressHost struct {
	Namespace string // "*", "~" or a namespace ("." is resolved)
	Host      string
}

// ParseEgressHosts resolves Sidecar egress hosts written in namespace ns.
func ParseEgressHosts(hosts []string, ns string) []EgressHost {
	out := make([]EgressHost, 0, len(hosts))
	for _, h := range hosts {
		hns, host, ok := strings.Cut(h, "/")
		if !ok {
			hns, host = "*", h
		}
		if hns == "." {
			hns = ns
		}
		out = append(out, EgressHost{Namespace: hns, Host: host})
	}
	return out
}

func (e EgressHost) matches(ns, host string, match func(pattern, host string) bool) bool {
	if e.Namespace == "~" || (e.Namespace != "*" && e.Namespace != ns) {
		return false
	}
	return match(e.Host, host)
}

// Scope computes the proxy's view of the snapshot.
func (s *Snapshot) Scope(p *Proxy) *Scope {
	var sidecar *config.Config
	key := scopeKey{namespace: p.Namespace}
	if c, ok := s.SidecarFor(p); ok {
		sidecar = &c
		key.sidecar = c.Key()
	}
	v, ok := s.scopes.Load(key)
	if !ok {
		v, _ = s.scopes.LoadOrStore(key, s.newScopeView(p.Namespace, sidecar))
	}
	view := v.(*scopeView)
	return &Scope{
		snap:            s,
		proxy:           p,
		Namespace:       p.Namespace,
		Sidecar:         sidecar,
		Services:        view.services,
		byHost:          view.byHost,
		VirtualServices: view.virtualServices,
	}
}

// scopeKey names every input of a scopeView: the proxy's namespace and the
// Sidecar resource in force (zero Key: none).
type scopeKey struct {
	namespace string
	sidecar   config.Key
}

// scopeView is the part of a Scope shared by every proxy with the same
// scopeKey in one snapshot. Immutable once built.
type scopeView struct {
	services        []*Service
	byHost          map[string]*Service
	virtualServices []config.Config
	egress          []EgressHost
}

func (s *Snapshot) newScopeView(ns string, sidecar *config.Config) *scopeView {
	v := &scopeView{byHost: map[string]*Service{}}
	if sidecar != nil {
		for _, eg := range sidecar.Spec.(*networking.Sidecar).GetEgress() {
			// "." is the workload's namespace, also for the root namespace's
			// default Sidecar ("./*" there means "my own namespace").
			v.egress = append(v.egress, ParseEgressHosts(eg.GetHosts(), ns)...)
		}
	}
	allows := func(ns, host string, match func(pattern, host string) bool) bool {
		return egressAllows(sidecar, v.egress, ns, host, match)
	}
	for _, svc := range s.services {
		if !s.ServiceVisibility(svc).VisibleTo(ns) || !allows(svc.Namespace, svc.Hostname, HostMatches) {
			continue
		}
		// One service per host: prefer the proxy's own namespace, else the
		// first (sorted by namespace) visible one, as Istio does.
		if prev, ok := v.byHost[svc.Hostname]; ok && (prev.Namespace == ns || svc.Namespace != ns) {
			continue
		}
		v.byHost[svc.Hostname] = svc
	}
	for _, svc := range s.services {
		if v.byHost[svc.Hostname] == svc {
			v.services = append(v.services, svc)
		}
	}
	for _, c := range s.byKind[schema.VirtualService] {
		vs := c.Spec.(*networking.VirtualService)
		if len(vs.GetHosts()) == 0 || !bindsToMesh(vs.GetGateways()) {
			continue // delegates are reached through their parents
		}
		vis := NewVisibility(vs.GetExportTo(), c.Namespace, s.Mesh.GetDefaultVirtualServiceExportTo())
		if !vis.VisibleTo(ns) {
			continue
		}
		for _, h := range vs.GetHosts() {
			// VirtualService hosts match egress hosts both ways, as in
			// Istio: "*/a.example.com" imports a "*.example.com" VS.
			if allows(c.Namespace, s.ResolveHost(h, c.Namespace), HostsOverlap) {
				v.virtualServices = append(v.virtualServices, c)
				break
			}
		}
	}
	return v
}

func bindsToMesh(gateways []string) bool {
	if len(gateways) == 0 {
		return true
	}
	for _, g := range gateways {
		if g == "mesh" {
			return true
		}
	}
	return false
}

// egressAllows applies the Sidecar's egress hosts (no Sidecar: everything).
func egressAllows(sidecar *config.Config, egress []EgressHost, ns, host string, match func(pattern, host string) bool) bool {
	if sidecar == nil || len(egress) == 0 {
		return true
	}
	for _, e := range egress {
		if e.matches(ns, host, match) {
			return true
		}
	}
	return false
}

// Proxy returns the proxy the scope was computed for.
func (sc *Scope) Proxy() *Proxy { return sc.proxy }

// Snapshot returns the snapshot the scope was computed from.
func (sc *Scope) Snapshot() *Snapshot { return sc.snap }

// Service returns the visible service for a host name.
func (sc *Scope) Service(host string) (*Service, bool) {
	svc, ok := sc.byHost[host]
	return svc, ok
}

// OutboundAllowAny reports whether unknown destinations pass through
// (ALLOW_ANY) rather than being blackholed (REGISTRY_ONLY). A Sidecar's
// outboundTrafficPolicy overrides the mesh setting.
func (sc *Scope) OutboundAllowAny() bool {
	if sc.Sidecar != nil {
		if otp := sc.Sidecar.Spec.(*networking.Sidecar).GetOutboundTrafficPolicy(); otp != nil {
			return otp.GetMode() == networking.OutboundTrafficPolicy_ALLOW_ANY
		}
	}
	return sc.snap.Mesh.GetOutboundTrafficPolicy().GetMode().String() != "REGISTRY_ONLY"
}

// DestinationRule returns the DestinationRule that applies to traffic from
// the proxy to host, with Istio's precedence: the proxy's namespace (rules
// with a matching workloadSelector first), then the namespace of the
// service, then the root namespace. Within a namespace the most specific
// host wins, then the oldest rule. Rules must be exported to the proxy
// (also in its own namespace); workloadSelector rules are private to their
// namespace. A proxy in the root namespace (a gateway in istio-system) first
// sees only the root rules private to that namespace, so that mesh-wide
// rules there do not shadow the service's own rule, as in Istio.
func (sc *Scope) DestinationRule(host string) (config.Config, bool) {
	s := sc.snap
	root := s.Mesh.GetRootNamespace()
	type pass struct {
		ns          string
		privateOnly bool
	}
	passes := []pass{{ns: sc.Namespace, privateOnly: sc.Namespace == root}}
	if svc, ok := sc.byHost[host]; ok && svc.Namespace != sc.Namespace {
		passes = append(passes, pass{ns: svc.Namespace})
	}
	if root != "" {
		passes = append(passes, pass{ns: root})
	}
	for _, ps := range passes {
		ns := ps.ns
		var best *destinationRule
		for i := range s.rulesByNS[ns] {
			r := &s.rulesByNS[ns][i]
			if len(r.selector) > 0 {
				if ns != sc.Namespace || !LabelsMatch(r.selector, sc.proxy.Labels) {
					continue
				}
			} else if !r.vis.VisibleTo(sc.Namespace) || (ps.privateOnly && !r.vis.privateTo(ns)) {
				continue
			}
			if !HostMatches(r.host, host) {
				continue
			}
			selBest, selThis := best != nil && len(best.selector) > 0, len(r.selector) > 0
			if best == nil || (selThis && !selBest) || (selThis == selBest && MoreSpecificHost(r.host, best.host)) {
				best = r
			}
		}
		if best != nil {
			return *best.cfg, true
		}
	}
	return config.Config{}, false
}

// Subset returns the named subset of the DestinationRule for host.
func (sc *Scope) Subset(host, name string) (*networking.Subset, bool) {
	c, ok := sc.DestinationRule(host)
	if !ok {
		return nil, false
	}
	for _, ss := range c.Spec.(*networking.DestinationRule).GetSubsets() {
		if ss.GetName() == name {
			return ss, true
		}
	}
	return nil, false
}
