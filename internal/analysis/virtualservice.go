package analysis

import (
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// meshGateway is the reserved gateway name for sidecars.
const meshGateway = "mesh"

// destination is one destination of a VirtualService with its field path.
type destination struct {
	d      *networking.Destination
	field  string // path of the Destination message
	mirror bool
}

// destinations lists every route and mirror destination of a
// VirtualService, in field order.
func destinations(vs *networking.VirtualService) []destination {
	var out []destination
	for i, h := range vs.GetHttp() {
		for j, r := range h.GetRoute() {
			out = append(out, destination{d: r.GetDestination(), field: fmt.Sprintf("spec.http[%d].route[%d].destination", i, j)})
		}
		if m := h.GetMirror(); m != nil {
			out = append(out, destination{d: m, field: fmt.Sprintf("spec.http[%d].mirror", i), mirror: true})
		}
		for j, m := range h.GetMirrors() {
			out = append(out, destination{d: m.GetDestination(), field: fmt.Sprintf("spec.http[%d].mirrors[%d].destination", i, j), mirror: true})
		}
	}
	for i, t := range vs.GetTls() {
		for j, r := range t.GetRoute() {
			out = append(out, destination{d: r.GetDestination(), field: fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j)})
		}
	}
	for i, t := range vs.GetTcp() {
		for j, r := range t.GetRoute() {
			out = append(out, destination{d: r.GetDestination(), field: fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j)})
		}
	}
	return out
}

// gatewayRef is one gateway name written in a VirtualService.
type gatewayRef struct {
	name  string
	field string
}

// gatewayRefs lists the gateways a VirtualService and its matches name.
func gatewayRefs(vs *networking.VirtualService) []gatewayRef {
	var out []gatewayRef
	for i, g := range vs.GetGateways() {
		out = append(out, gatewayRef{g, fmt.Sprintf("spec.gateways[%d]", i)})
	}
	for i, h := range vs.GetHttp() {
		for j, m := range h.GetMatch() {
			for k, g := range m.GetGateways() {
				out = append(out, gatewayRef{g, fmt.Sprintf("spec.http[%d].match[%d].gateways[%d]", i, j, k)})
			}
		}
	}
	for i, t := range vs.GetTls() {
		for j, m := range t.GetMatch() {
			for k, g := range m.GetGateways() {
				out = append(out, gatewayRef{g, fmt.Sprintf("spec.tls[%d].match[%d].gateways[%d]", i, j, k)})
			}
		}
	}
	for i, t := range vs.GetTcp() {
		for j, m := range t.GetMatch() {
			for k, g := range m.GetGateways() {
				out = append(out, gatewayRef{g, fmt.Sprintf("spec.tcp[%d].match[%d].gateways[%d]", i, j, k)})
			}
		}
	}
	return out
}

// gatewayKey resolves a gateway reference written in namespace ns:
// "ns/name", "name" (the VirtualService's namespace) or the legacy
// "name.ns.svc.<suffix>" form.
func gatewayKey(ref, ns string) config.Key {
	k := config.Key{Kind: schema.Gateway, Namespace: ns, Name: ref}
	if gns, name, ok := strings.Cut(ref, "/"); ok {
		k.Namespace, k.Name = gns, name
	} else if name, rest, ok := strings.Cut(ref, "."); ok {
		gns, _, _ := strings.Cut(rest, ".")
		k.Namespace, k.Name = gns, name
	}
	return k
}

// virtualServiceReferences checks what each VirtualService refers to:
// gateways, delegates, destination hosts, ports and subsets.
func virtualServiceReferences(c *env) []Message {
	var out []Message
	for _, cfg := range c.snap.Configs(schema.VirtualService) {
		vs, _ := cfg.Spec.(*networking.VirtualService)
		o := originOf(cfg)
		for _, g := range gatewayRefs(vs) {
			if g.name == meshGateway {
				continue
			}
			if _, ok := c.snap.Config(gatewayKey(g.name, cfg.Namespace)); !ok {
				out = append(out, newMessage(ReferencedResourceNotFound, o, g.field, "Referenced gateway not found: %q", g.name))
			}
		}
		for i, h := range vs.GetHttp() {
			d := h.GetDelegate()
			if d == nil {
				continue
			}
			k := config.Key{Kind: schema.VirtualService, Namespace: d.GetNamespace(), Name: d.GetName()}
			if k.Namespace == "" {
				k.Namespace = cfg.Namespace
			}
			if _, ok := c.snap.Config(k); !ok {
				out = append(out, newMessage(ReferencedResourceNotFound, o, fmt.Sprintf("spec.http[%d].delegate", i),
					"Referenced delegate VirtualService not found: %q", k.Namespace+"/"+k.Name))
			}
		}
		for _, d := range destinations(vs) {
			out = append(out, c.checkDestination(cfg, d)...)
		}
	}
	return out
}

// checkDestination checks that a destination's host is a known service,
// its port one of the service's ports and its subset defined by the
// DestinationRule that applies.
func (c *env) checkDestination(cfg config.Config, d destination) []Message {
	o := originOf(cfg)
	written := d.d.GetHost()
	host := c.snap.ResolveHost(written, cfg.Namespace)
	kind := "host"
	if d.mirror {
		kind = "mirror host"
	}
	svcs := c.services(host, cfg.Namespace)
	if len(svcs) == 0 {
		return []Message{newMessage(ReferencedResourceNotFound, o, d.field+".host", "Referenced %s not found: %q", kind, written)}
	}
	var out []Message
	svc := svcs[0]
	if p := d.d.GetPort(); p != nil && p.GetNumber() != 0 {
		if _, ok := svc.Port(p.GetNumber()); !ok {
			out = append(out, newMessage(ReferencedResourceNotFound, o, d.field+".port.number",
				"Referenced host:port not found: %q", fmt.Sprintf("%s:%d", written, p.GetNumber())))
		}
	} else if len(svc.Ports) > 1 {
		nums := make([]string, len(svc.Ports))
		for i, p := range svc.Ports {
			nums[i] = fmt.Sprint(p.Number)
		}
		out = append(out, newMessage(VirtualServiceDestinationPortSelectorRequired, o, d.field,
			"This VirtualService routes to a service %q that exposes multiple ports [%s]. Specifying a port in the destination is required to disambiguate.",
			written, strings.Join(nums, " ")))
	}
	if subset := d.d.GetSubset(); subset != "" {
		if _, ok := c.scope(cfg.Namespace).Subset(host, subset); !ok {
			kind := "host+subset in destinationrule"
			if d.mirror {
				kind = "mirror+subset in destinationrule"
			}
			out = append(out, newMessage(ReferencedResourceNotFound, o, d.field+".subset",
				"Referenced %s not found: %q", kind, written+"+"+subset))
		}
	}
	return out
}

// conflictingVirtualServiceHosts reports hosts defined by several
// VirtualServices: on the mesh gateway (IST0109, undefined behaviour) when
// the VirtualServices are visible from a common namespace, and on one
// gateway (TRL0005, routes merged in creation order).
func conflictingVirtualServiceHosts(c *env) []Message {
	type binding struct{ gateway, host string }
	byBinding := map[binding][]config.Config{}
	var bindings []binding
	for _, cfg := range c.snap.Configs(schema.VirtualService) { // oldest first
		vs, _ := cfg.Spec.(*networking.VirtualService)
		gws := vs.GetGateways()
		if len(gws) == 0 {
			gws = []string{meshGateway}
		}
		seen := map[binding]bool{}
		for _, g := range gws {
			gw := meshGateway
			if g != meshGateway {
				k := gatewayKey(g, cfg.Namespace)
				gw = k.Namespace + "/" + k.Name
			}
			for _, h := range vs.GetHosts() {
				b := binding{gw, c.snap.ResolveHost(h, cfg.Namespace)}
				if seen[b] {
					continue
				}
				seen[b] = true
				if byBinding[b] == nil {
					bindings = append(bindings, b)
				}
				byBinding[b] = append(byBinding[b], cfg)
			}
		}
	}
	var out []Message
	for _, b := range bindings {
		list := byBinding[b]
		if len(list) < 2 {
			continue
		}
		if b.gateway != meshGateway {
			names := objectNames(list)
			for _, cfg := range list {
				out = append(out, newMessage(ConflictingGatewayVirtualServiceHosts, originOf(cfg), "spec.hosts",
					"The VirtualServices %s bound to gateway %s define the same host %s; their routes are merged in creation order, so an earlier catch-all route hides later ones.",
					names, b.gateway, b.host))
			}
			continue
		}
		for i, cfg := range list {
			group := []config.Config{cfg}
			for j, other := range list {
				if i != j && c.virtualServicesOverlap(cfg, other) {
					group = append(group, other)
				}
			}
			if len(group) < 2 {
				continue
			}
			model.SortConfigs(group)
			out = append(out, newMessage(ConflictingMeshGatewayVirtualServiceHosts, originOf(cfg), "spec.hosts",
				"The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
				objectNames(group), b.host))
		}
	}
	return out
}

// virtualServicesOverlap reports whether some namespace sees both
// VirtualServices (after exportTo).
func (c *env) virtualServicesOverlap(a, b config.Config) bool {
	def := c.snap.Mesh.GetDefaultVirtualServiceExportTo()
	avs, _ := a.Spec.(*networking.VirtualService)
	bvs, _ := b.Spec.(*networking.VirtualService)
	va, vb := exportSetOf(avs.GetExportTo(), a.Namespace, def), exportSetOf(bvs.GetExportTo(), b.Namespace, def)
	if va.all && vb.all {
		return true
	}
	if va.all {
		return len(vb.names) > 0
	}
	if vb.all {
		return len(va.names) > 0
	}
	for n := range va.names {
		if vb.names[n] {
			return true
		}
	}
	return false
}

// exportSet is a resolved exportTo list (model.Visibility does not expose
// its members, which overlap checks need).
type exportSet struct {
	all   bool
	names map[string]bool
}

func exportSetOf(exportTo []string, ns string, defaults []string) exportSet {
	if len(exportTo) == 0 {
		exportTo = defaults
	}
	if len(exportTo) == 0 {
		return exportSet{all: true}
	}
	s := exportSet{names: map[string]bool{}}
	for _, e := range exportTo {
		switch e {
		case "*":
			s.all = true
		case ".":
			s.names[ns] = true
		case "~":
		default:
			s.names[e] = true
		}
	}
	return s
}

// objectNames joins "ns/name" of configs with commas, as istioctl does.
func objectNames(list []config.Config) string {
	names := make([]string, len(list))
	for i, c := range list {
		names[i] = c.Namespace + "/" + c.Name
	}
	names = slices.Compact(names)
	return strings.Join(names, ",")
}
