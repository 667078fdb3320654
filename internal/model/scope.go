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
	egress          []EgressHost
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

func (e EgressHost) matches(ns, host string) bool {
	if e.Namespace == "~" || (e.Namespace != "*" && e.Namespace != ns) {
		return false
	}
	return HostMatches(e.Host, host)
}

// Scope computes the proxy's view of the snapshot.
func (s *Snapshot) Scope(p *Proxy) *Scope {
	sc := &Scope{snap: s, proxy: p, Namespace: p.Namespace, byHost: map[string]*Service{}}
	if c, ok := s.SidecarFor(p); ok {
		sc.Sidecar = &c
		for _, eg := range c.Spec.(*networking.Sidecar).GetEgress() {
			sc.egress = append(sc.egress, ParseEgressHosts(eg.GetHosts(), c.Namespace)...)
		}
	}
	for _, svc := range s.services {
		if !s.ServiceVisibility(svc).VisibleTo(p.Namespace) || !sc.egressAllows(svc.Namespace, svc.Hostname) {
			continue
		}
		// One service per host: prefer the proxy's own namespace, else the
		// first (sorted by namespace) visible one, as Istio does.
		if prev, ok := sc.byHost[svc.Hostname]; ok && (prev.Namespace == p.Namespace || svc.Namespace != p.Namespace) {
			continue
		}
		sc.byHost[svc.Hostname] = svc
	}
	for _, svc := range s.services {
		if sc.byHost[svc.Hostname] == svc {
			sc.Services = append(sc.Services, svc)
		}
	}
	for _, c := range s.byKind[schema.VirtualService] {
		vs := c.Spec.(*networking.VirtualService)
		if len(vs.GetHosts()) == 0 || !bindsToMesh(vs.GetGateways()) {
			continue // delegates are reached through their parents
		}
		vis := NewVisibility(vs.GetExportTo(), c.Namespace, s.Mesh.GetDefaultVirtualServiceExportTo())
		if !vis.VisibleTo(p.Namespace) {
			continue
		}
		allowed := false
		for _, h := range vs.GetHosts() {
			if sc.egressAllows(c.Namespace, s.ResolveHost(h, c.Namespace)) {
				allowed = true
				break
			}
		}
		if allowed {
			sc.VirtualServices = append(sc.VirtualServices, c)
		}
	}
	return sc
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
func (sc *Scope) egressAllows(ns, host string) bool {
	if sc.Sidecar == nil || len(sc.egress) == 0 {
		return true
	}
	for _, e := range sc.egress {
		if e.matches(ns, host) {
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
// host wins, then the oldest rule. Rules must be exported to the proxy.
func (sc *Scope) DestinationRule(host string) (config.Config, bool) {
	s := sc.snap
	nss := []string{sc.Namespace}
	if svc, ok := sc.byHost[host]; ok && svc.Namespace != sc.Namespace {
		nss = append(nss, svc.Namespace)
	}
	if root := s.Mesh.GetRootNamespace(); root != "" {
		nss = append(nss, root)
	}
	for _, ns := range nss {
		var best *config.Config
		bestHost := ""
		for i := range s.byKind[schema.DestinationRule] {
			c := &s.byKind[schema.DestinationRule][i]
			if c.Namespace != ns {
				continue
			}
			dr := c.Spec.(*networking.DestinationRule)
			if sel := dr.GetWorkloadSelector().GetMatchLabels(); len(sel) > 0 {
				if ns != sc.Namespace || !LabelsMatch(sel, sc.proxy.Labels) {
					continue
				}
			}
			if ns != sc.Namespace && !NewVisibility(dr.GetExportTo(), ns, s.Mesh.GetDefaultDestinationRuleExportTo()).VisibleTo(sc.Namespace) {
				continue
			}
			h := s.ResolveHost(dr.GetHost(), c.Namespace)
			if !HostMatches(h, host) {
				continue
			}
			selBest := best != nil && len(best.Spec.(*networking.DestinationRule).GetWorkloadSelector().GetMatchLabels()) > 0
			selThis := len(dr.GetWorkloadSelector().GetMatchLabels()) > 0
			if best == nil || (selThis && !selBest) || (selThis == selBest && MoreSpecificHost(h, bestHost)) {
				best, bestHost = c, h
			}
		}
		if best != nil {
			return *best, true
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
