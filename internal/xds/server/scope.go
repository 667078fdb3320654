package server

import (
	"maps"
	"slices"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// affects reports whether a push can change what proxy p receives. It is
// conservative: when in doubt it says yes, since a push whose generated
// content is unchanged costs generation time but sends nothing.
//
// The change set of ev describes the difference between old (the snapshot
// of the last event this connection processed) and ev.snap; both sides are
// checked, so a deleted or re-scoped object that the proxy saw before still
// reaches it. Scopes are computed lazily, at most once per side.
//
// Rules (any match means affected):
//   - nothing known (no previous snapshot, unknown change set), or a proxy
//     that is not a sidecar (gateways and waypoints are not scoped by
//     Sidecar/exportTo the same way): affected;
//   - a changed service whose host is visible in the proxy's Scope, or
//     which has an instance on the proxy's own addresses (inbound);
//   - a changed Sidecar in the proxy's namespace or the root namespace;
//   - a changed VirtualService that is in the proxy's Scope, or that has no
//     hosts (a delegate, reached through parents we do not track);
//   - a changed DestinationRule visible to the proxy's namespace whose host
//     is a wildcard or the host of a visible service;
//   - any other kind of config.
func affects(p *model.Proxy, old *model.Snapshot, ev *pushEvent) bool {
	if ev.all || old == nil || p.Type != model.SidecarProxy {
		return true
	}
	v := &views{proxy: p, sides: [2]side{{snap: old}, {snap: ev.snap}}}
	for k := range ev.services {
		if v.serviceAffects(k) {
			return true
		}
	}
	for k := range ev.configs {
		if v.configAffects(k) {
			return true
		}
	}
	return false
}

// views holds the proxy's view of the snapshots before and after a push.
type views struct {
	proxy *model.Proxy
	sides [2]side
}

type side struct {
	snap  *model.Snapshot
	scope *model.Scope // computed on first use
}

func (s *side) get(p *model.Proxy) *model.Scope {
	if s.scope == nil {
		s.scope = s.snap.Scope(p)
	}
	return s.scope
}

func (v *views) serviceAffects(k model.ServiceKey) bool {
	for i := range v.sides {
		sd := &v.sides[i]
		if _, ok := sd.get(v.proxy).Service(k.Hostname); ok {
			return true
		}
		for _, in := range sd.snap.ProxyInstances(v.proxy) {
			if in.Service.Key() == k {
				return true
			}
		}
	}
	return false
}

func (v *views) configAffects(k config.Key) bool {
	switch k.Kind {
	case schema.Sidecar:
		for i := range v.sides {
			if k.Namespace == v.proxy.Namespace || k.Namespace == v.sides[i].snap.Mesh.GetRootNamespace() {
				return true
			}
		}
		return false
	case schema.VirtualService:
		for i := range v.sides {
			if v.virtualServiceAffects(&v.sides[i], k) {
				return true
			}
		}
		return false
	case schema.DestinationRule:
		for i := range v.sides {
			if v.destinationRuleAffects(&v.sides[i], k) {
				return true
			}
		}
		return false
	}
	return true
}

func (v *views) virtualServiceAffects(sd *side, k config.Key) bool {
	c, ok := sd.snap.Config(k)
	if !ok {
		return false // absent on this side: nothing to add or remove
	}
	vs, ok := c.Spec.(*networking.VirtualService)
	if !ok || len(vs.GetHosts()) == 0 {
		return true
	}
	for _, in := range sd.get(v.proxy).VirtualServices {
		if in.Key() == k {
			return true
		}
	}
	return false
}

func (v *views) destinationRuleAffects(sd *side, k config.Key) bool {
	c, ok := sd.snap.Config(k)
	if !ok {
		return false
	}
	dr, ok := c.Spec.(*networking.DestinationRule)
	if !ok {
		return true
	}
	if c.Namespace != v.proxy.Namespace &&
		!model.NewVisibility(dr.GetExportTo(), c.Namespace, sd.snap.Mesh.GetDefaultDestinationRuleExportTo()).VisibleTo(v.proxy.Namespace) {
		return false
	}
	host := sd.snap.ResolveHost(dr.GetHost(), c.Namespace)
	if host == "" || host[0] == '*' {
		return true
	}
	_, visible := sd.get(v.proxy).Service(host)
	return visible
}

// ownInstancesChanged reports whether the service instances on the proxy's
// own addresses, from which its inbound listeners and clusters are built,
// differ between two snapshots (in any order): an endpoint-only change of
// a workload that runs this proxy must still reach its CDS and LDS.
func ownInstancesChanged(p *model.Proxy, old, cur *model.Snapshot) bool {
	a, b := old.ProxyInstances(p), cur.ProxyInstances(p)
	if len(a) != len(b) {
		return true
	}
	used := make([]bool, len(b))
next:
	for _, x := range a {
		for j, y := range b {
			if !used[j] && sameInstance(x, y) {
				used[j] = true
				continue next
			}
		}
		return true
	}
	return false
}

// sameInstance compares what a proxy's inbound configuration is built
// from: the service and the endpoint.
func sameInstance(x, y model.ServiceInstance) bool {
	ex, ey := x.Endpoint, y.Endpoint
	return x.Service.Key() == y.Service.Key() && slices.Equal(x.Service.Ports, y.Service.Ports) &&
		ex.Address == ey.Address && maps.Equal(ex.Ports, ey.Ports) && maps.Equal(ex.Labels, ey.Labels) &&
		ex.ServiceAccount == ey.ServiceAccount && ex.TLSMode == ey.TLSMode && ex.WorkloadName == ey.WorkloadName &&
		ex.Namespace == ey.Namespace && ex.Network == ey.Network && ex.Locality == ey.Locality
}
