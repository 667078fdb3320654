package describe

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// ServiceRef names the service to describe.
type ServiceRef struct {
	// Host is a full host name, or a short one ("reviews",
	// "reviews.default") completed in Namespace.
	Host string
	// Port, when not 0, limits the report to that service port.
	Port uint32
	// Namespace completes short names and picks among services of the same
	// host declared in several namespaces.
	Namespace string
}

// ParseServiceRef reads HOST[:PORT].
func ParseServiceRef(arg, namespace string) (ServiceRef, error) {
	ref := ServiceRef{Host: arg, Namespace: namespace}
	if h, p, ok := strings.Cut(arg, ":"); ok {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 || n > 65535 {
			return ServiceRef{}, fmt.Errorf("service %q: port %q is not a port number", arg, p)
		}
		ref.Host, ref.Port = h, uint32(n)
	}
	if ref.Host == "" {
		return ServiceRef{}, fmt.Errorf("service %q: no host name", arg)
	}
	return ref, nil
}

// NotFoundError says that the named service or workload does not exist;
// Known lists what does, for the message.
type NotFoundError struct {
	What  string
	Known []string
}

func (e *NotFoundError) Error() string {
	s := e.What + " not found"
	if len(e.Known) > 0 {
		k := e.Known
		more := ""
		if len(k) > 12 {
			more = fmt.Sprintf(" and %d more", len(k)-12)
			k = k[:12]
		}
		s += " (known: " + strings.Join(k, ", ") + more + ")"
	}
	return s
}

// findService resolves ref to one service of the snapshot.
func findService(snap *model.Snapshot, ref ServiceRef) (*model.Service, error) {
	ns := ref.Namespace
	if ns == "" {
		ns = config.DefaultNamespace
	}
	candidates := []string{ref.Host}
	if !strings.Contains(ref.Host, ".") {
		candidates = append(candidates, snap.ResolveHost(ref.Host, ns))
	} else if strings.Count(ref.Host, ".") == 1 && !strings.HasPrefix(ref.Host, "*") {
		candidates = append(candidates, ref.Host+".svc."+snap.DomainSuffix) // name.namespace
	}
	for _, h := range candidates {
		svcs := snap.ServicesByHost(h)
		if len(svcs) == 0 {
			continue
		}
		if len(svcs) == 1 {
			return svcs[0], nil
		}
		var nss []string
		for _, s := range svcs {
			if s.Namespace == ns {
				return s, nil
			}
			nss = append(nss, s.Namespace)
		}
		return nil, fmt.Errorf("service %s is declared in namespaces %s: pick one with -n", h, strings.Join(nss, ", "))
	}
	var known []string
	for _, s := range snap.Services() {
		known = append(known, s.Hostname)
	}
	return nil, &NotFoundError{What: fmt.Sprintf("service %q (namespace %s)", ref.Host, ns), Known: slices.Compact(known)}
}

// Service describes the service ref names as the client from sees it; a
// zero from is a sidecar without labels in the service's namespace.
func Service(in Input, ref ServiceRef, from Viewpoint) (*ServiceReport, error) {
	snap := in.Snapshot
	if snap == nil {
		return nil, errors.New("describe: no snapshot")
	}
	svc, err := findService(snap, ref)
	if err != nil {
		return nil, err
	}
	ports := svc.Ports
	if ref.Port != 0 {
		p, ok := svc.Port(ref.Port)
		if !ok {
			var have []string
			for _, p := range svc.Ports {
				have = append(have, strconv.FormatUint(uint64(p.Number), 10))
			}
			return nil, fmt.Errorf("service %s has no port %d (ports: %s)", svc.Hostname, ref.Port, strings.Join(have, ", "))
		}
		ports = []model.Port{p}
	}
	if from.Namespace == "" {
		from.Namespace = svc.Namespace
	}
	r := &ServiceReport{
		Host: svc.Hostname, Namespace: svc.Namespace, Port: ref.Port,
		Source:       objectOf(snap, svc.Source),
		Resolution:   svc.Resolution.String(),
		MeshExternal: svc.MeshExternal,
		Addresses:    svc.Addresses,
		ExportTo:     exportTo(svc.ExportTo, snap.Mesh.GetDefaultServiceExportTo()),
	}
	for _, p := range svc.Ports {
		r.Ports = append(r.Ports, Port{Name: p.Name, Number: p.Number, Protocol: string(p.Protocol), TargetPort: p.TargetPort})
	}
	eps := snap.Endpoints(svc.Key())
	for _, ep := range eps {
		r.Workloads = append(r.Workloads, Instance{
			Name: ep.WorkloadName, Namespace: ep.Namespace, Address: ep.Address, Ports: ep.Ports,
			Labels: ep.Labels, ServiceAccount: ep.ServiceAccount, TLSMode: ep.TLSMode,
		})
	}

	proxy := &model.Proxy{Type: model.SidecarProxy, Namespace: from.Namespace, Labels: from.Labels}
	sc := snap.Scope(proxy)
	if sc.Sidecar != nil {
		o := objectOf(snap, sc.Sidecar.Key())
		from.Sidecar = &o
	}
	r.From = from
	r.Visible, r.VisibleReason = visibility(snap, sc, svc)

	involved := map[config.Key]bool{svc.Source: true}
	r.VirtualServices = virtualServices(snap, sc, svc, involved)
	dr, hasDR := sc.DestinationRule(svc.Hostname)
	var drSpec *networking.DestinationRule
	if hasDR {
		involved[dr.Key()] = true
		drSpec = dr.Spec.(*networking.DestinationRule)
		r.DestinationRule = &DestinationRule{
			Object: objectOf(snap, dr.Key()),
			Host:   drSpec.GetHost(),
			Reason: drReason(snap, sc, svc, dr),
			Policy: trafficPolicy(drSpec.GetTrafficPolicy()),
		}
		for _, ss := range drSpec.GetSubsets() {
			sub := Subset{Name: ss.GetName(), Labels: ss.GetLabels(), Workloads: []string{}, Policy: trafficPolicy(ss.GetTrafficPolicy())}
			for _, ep := range eps {
				if model.LabelsMatch(ss.GetLabels(), ep.Labels) {
					sub.Workloads = append(sub.Workloads, ep.WorkloadName)
				}
			}
			r.DestinationRule.Subsets = append(r.DestinationRule.Subsets, sub)
		}
	}
	r.OtherDestinationRules = otherDestinationRules(snap, sc, svc, dr, hasDR)
	markSubsets(snap, r.VirtualServices, svc, drSpec, hasDR)

	for _, p := range ports {
		r.Clusters = append(r.Clusters, cluster(snap, svc, p, "", dr, hasDR))
		for _, ss := range drSpec.GetSubsets() {
			cl := cluster(snap, svc, p, ss.GetName(), dr, hasDR)
			for _, ep := range eps {
				if model.LabelsMatch(ss.GetLabels(), ep.Labels) {
					cl.selects = append(cl.selects, ep.WorkloadName)
				}
			}
			r.Clusters = append(r.Clusters, cl)
		}
	}

	r.MTLS = []PortMTLS{}
	authz := newAuthzCollector(snap)
	for _, ep := range eps {
		if ep.TLSMode != "istio" {
			r.MTLS = append(r.MTLS, PortMTLS{Workload: ep.WorkloadName, Mode: "DISABLE", Level: "no proxy (tlsMode " + ep.TLSMode + ")"})
			continue
		}
		pa := snap.PeerAuthentication(ep.Namespace, ep.Labels)
		seen := map[uint32]bool{}
		for _, p := range ports {
			target := ep.PortFor(p)
			if seen[target] {
				continue
			}
			seen[target] = true
			m := portMTLS(snap, pa, target)
			m.Workload = ep.WorkloadName
			if m.Policy != "" {
				involved[peerAuthnKey(m.Policy)] = true
			}
			r.MTLS = append(r.MTLS, m)
		}
		authz.add(ep.Namespace, ep.WorkloadName, ep.Labels)
	}
	r.Conflicts = conflicts(r.Clusters, r.MTLS, ports, eps)
	r.Authorization = authz.list(involved)
	for _, ep := range eps {
		involved[config.Key{Kind: schema.WorkloadEntry, Namespace: ep.Namespace, Name: ep.WorkloadName}] = true
	}
	for _, vs := range r.VirtualServices {
		if vs.Applies {
			involved[config.Key{Kind: schema.VirtualService, Namespace: vs.Namespace, Name: vs.Name}] = true
		}
	}
	r.Messages = messagesFor(in.Messages, involved)
	return r, nil
}

// exportTo returns the exportTo in force, "*" when empty.
func exportTo(list, defaults []string) []string {
	if len(list) == 0 {
		list = defaults
	}
	if len(list) == 0 {
		return []string{"*"}
	}
	return list
}

// visibility says whether the client's scope holds svc, and why.
func visibility(snap *model.Snapshot, sc *model.Scope, svc *model.Service) (bool, string) {
	got, ok := sc.Service(svc.Hostname)
	exp := strings.Join(exportTo(svc.ExportTo, snap.Mesh.GetDefaultServiceExportTo()), ",")
	if ok && got == svc {
		why := "exportTo " + exp + " includes namespace " + sc.Namespace
		if sc.Sidecar == nil {
			return true, why + "; no Sidecar resource, so every host is imported"
		}
		return true, why + "; Sidecar " + sc.Sidecar.Namespace + "/" + sc.Sidecar.Name + " imports it (" + strings.Join(egressHosts(sc.Sidecar), " ") + ")"
	}
	if !snap.ServiceVisibility(svc).VisibleTo(sc.Namespace) {
		return false, "exportTo " + exp + " does not include namespace " + sc.Namespace
	}
	if ok {
		return false, "the client uses the service of the same host declared in namespace " + got.Namespace
	}
	if sc.Sidecar != nil {
		return false, "Sidecar " + sc.Sidecar.Namespace + "/" + sc.Sidecar.Name + " does not import it (egress hosts " + strings.Join(egressHosts(sc.Sidecar), " ") + ")"
	}
	return false, "not in the client's scope"
}

func egressHosts(c *config.Config) []string {
	var out []string
	for _, eg := range c.Spec.(*networking.Sidecar).GetEgress() {
		out = append(out, eg.GetHosts()...)
	}
	if len(out) == 0 {
		return []string{"*/* (no egress listeners)"}
	}
	return out
}

// virtualServices lists every VirtualService whose hosts cover the service
// and says which one shapes the client's routes, as the route generator
// picks it: the oldest in scope naming the host exactly, else the most
// specific covering wildcard (oldest on ties).
func virtualServices(snap *model.Snapshot, sc *model.Scope, svc *model.Service, involved map[config.Key]bool) []VirtualService {
	inScope := map[config.Key]bool{}
	for _, c := range sc.VirtualServices {
		inScope[c.Key()] = true
	}
	// The winner, by the generator's rule.
	var winner *config.Config
	var winnerHost string
	for i := range sc.VirtualServices {
		c := &sc.VirtualServices[i]
		for _, h := range c.Spec.(*networking.VirtualService).GetHosts() {
			rh := snap.ResolveHost(h, c.Namespace)
			if !model.HostMatches(rh, svc.Hostname) {
				continue
			}
			better := winner == nil ||
				(rh == svc.Hostname && winnerHost != svc.Hostname) ||
				(rh != svc.Hostname && winnerHost != svc.Hostname && model.MoreSpecificHost(rh, winnerHost) && rh != winnerHost)
			if better {
				winner, winnerHost = c, rh
			}
		}
	}
	out := []VirtualService{}
	for _, c := range snap.Configs(schema.VirtualService) {
		vs := c.Spec.(*networking.VirtualService)
		var hosts []string
		exact := false
		for _, h := range vs.GetHosts() {
			rh := snap.ResolveHost(h, c.Namespace)
			if model.HostMatches(rh, svc.Hostname) {
				hosts = append(hosts, h)
				exact = exact || rh == svc.Hostname
			}
		}
		if len(hosts) == 0 {
			continue
		}
		v := VirtualService{Object: objectOf(snap, c.Key()), Hosts: hosts, Gateways: vs.GetGateways(), Routes: routes(vs)}
		vis := exportTo(vs.GetExportTo(), snap.Mesh.GetDefaultVirtualServiceExportTo())
		switch {
		case !bindsToMesh(vs.GetGateways()):
			v.Reason = "bound to gateways " + strings.Join(vs.GetGateways(), ",") + " only, not to sidecars (add \"mesh\" to gateways)"
		case !model.NewVisibility(vs.GetExportTo(), c.Namespace, snap.Mesh.GetDefaultVirtualServiceExportTo()).VisibleTo(sc.Namespace):
			v.Reason = "exportTo " + strings.Join(vis, ",") + " does not include namespace " + sc.Namespace
		case !inScope[c.Key()]:
			v.Reason = "Sidecar " + sc.Sidecar.Namespace + "/" + sc.Sidecar.Name + " does not import its hosts"
		case winner != nil && winner.Key() == c.Key():
			v.Applies = true
			involved[c.Key()] = true
			if exact {
				v.Reason = "host " + quoteHosts(hosts) + " names " + svc.Hostname + " exactly; the oldest such VirtualService in the client's scope"
			} else {
				v.Reason = "wildcard host " + quoteHosts(hosts) + " covers " + svc.Hostname + "; no VirtualService names it exactly, and this is the most specific wildcard"
			}
			v.Reason += " (exportTo " + strings.Join(vis, ",") + ")"
		default:
			w := winner.Namespace + "/" + winner.Name
			switch {
			case winnerHost == svc.Hostname && !exact:
				v.Reason = "shadowed: " + w + " names the host exactly"
			case winnerHost != svc.Hostname:
				v.Reason = "shadowed: " + w + " has a more specific wildcard host (" + winnerHost + ")"
			default:
				v.Reason = "shadowed: " + w + " names the same host and is older (or first by namespace/name); only one VirtualService per host applies to sidecars"
			}
		}
		out = append(out, v)
	}
	return out
}

func quoteHosts(hosts []string) string {
	q := make([]string, len(hosts))
	for i, h := range hosts {
		q[i] = strconv.Quote(h)
	}
	return strings.Join(q, ", ")
}

func bindsToMesh(gateways []string) bool {
	return len(gateways) == 0 || slices.Contains(gateways, "mesh")
}

// routes summarises a VirtualService's routes.
func routes(vs *networking.VirtualService) []Route {
	var out []Route
	for i, h := range vs.GetHttp() {
		r := Route{Kind: "http", Index: i, Name: h.GetName(), Actions: httpActions(h)}
		for _, m := range h.GetMatch() {
			r.Match = append(r.Match, httpMatch(m))
		}
		for _, d := range h.GetRoute() {
			r.Destinations = append(r.Destinations, destination(d.GetDestination(), d.GetWeight(), len(h.GetRoute())))
		}
		out = append(out, r)
	}
	for i, t := range vs.GetTls() {
		r := Route{Kind: "tls", Index: i}
		for _, m := range t.GetMatch() {
			r.Match = append(r.Match, tlsMatch(m))
		}
		for _, d := range t.GetRoute() {
			r.Destinations = append(r.Destinations, destination(d.GetDestination(), d.GetWeight(), len(t.GetRoute())))
		}
		out = append(out, r)
	}
	for i, t := range vs.GetTcp() {
		r := Route{Kind: "tcp", Index: i}
		for _, m := range t.GetMatch() {
			r.Match = append(r.Match, l4Match(m))
		}
		for _, d := range t.GetRoute() {
			r.Destinations = append(r.Destinations, destination(d.GetDestination(), d.GetWeight(), len(t.GetRoute())))
		}
		out = append(out, r)
	}
	return out
}

func destination(d *networking.Destination, weight int32, n int) Destination {
	if weight == 0 && n == 1 {
		weight = 100
	}
	return Destination{Host: d.GetHost(), Subset: d.GetSubset(), Port: d.GetPort().GetNumber(), Weight: weight}
}

// markSubsets flags destinations of applying VirtualServices that name a
// subset of the service missing from the DestinationRule in effect.
func markSubsets(snap *model.Snapshot, vss []VirtualService, svc *model.Service, dr *networking.DestinationRule, hasDR bool) {
	for i := range vss {
		if !vss[i].Applies {
			continue
		}
		for j := range vss[i].Routes {
			ds := vss[i].Routes[j].Destinations
			for k := range ds {
				d := &ds[k]
				if d.Subset == "" || snap.ResolveHost(d.Host, vss[i].Namespace) != svc.Hostname {
					continue
				}
				switch {
				case !hasDR:
					d.Problem = "no DestinationRule defines subset " + d.Subset + " for the client: requests routed here fail (503)"
				case !slices.ContainsFunc(dr.GetSubsets(), func(s *networking.Subset) bool { return s.GetName() == d.Subset }):
					d.Problem = "the DestinationRule in effect has no subset " + d.Subset + ": requests routed here fail (503)"
				}
			}
		}
	}
}

// drReason explains why dr is the rule in effect for the client.
func drReason(snap *model.Snapshot, sc *model.Scope, svc *model.Service, dr config.Config) string {
	spec := dr.Spec.(*networking.DestinationRule)
	root := snap.Mesh.GetRootNamespace()
	var parts []string
	switch dr.Namespace {
	case sc.Namespace:
		parts = append(parts, "in the client's namespace "+sc.Namespace+", which is looked up first")
	case svc.Namespace:
		parts = append(parts, "in the service's namespace "+svc.Namespace+" (no rule for the host in the client's namespace "+sc.Namespace+")")
	case root:
		parts = append(parts, "mesh-wide, in the root namespace "+root+" (no rule for the host in the client's or the service's namespace)")
	}
	if sel := spec.GetWorkloadSelector().GetMatchLabels(); len(sel) > 0 {
		parts = append(parts, "its workloadSelector "+labelString(sel)+" selects the client")
	}
	rh := snap.ResolveHost(spec.GetHost(), dr.Namespace)
	if rh == svc.Hostname {
		parts = append(parts, "host "+strconv.Quote(spec.GetHost())+" names the service exactly")
	} else {
		parts = append(parts, "host "+strconv.Quote(spec.GetHost())+" covers the service (the most specific match there)")
	}
	return strings.Join(parts, "; ")
}

// otherDestinationRules explains why each other rule covering the host is
// not in effect for the client.
func otherDestinationRules(snap *model.Snapshot, sc *model.Scope, svc *model.Service, winner config.Config, hasWinner bool) []Candidate {
	root := snap.Mesh.GetRootNamespace()
	order := func(ns string) int {
		switch ns {
		case sc.Namespace:
			return 0
		case svc.Namespace:
			return 1
		case root:
			return 2
		}
		return 3
	}
	var out []Candidate
	for _, c := range snap.Configs(schema.DestinationRule) {
		if hasWinner && c.Key() == winner.Key() {
			continue
		}
		spec := c.Spec.(*networking.DestinationRule)
		rh := snap.ResolveHost(spec.GetHost(), c.Namespace)
		if !model.HostMatches(rh, svc.Hostname) {
			continue
		}
		cand := Candidate{Object: objectOf(snap, c.Key()), Host: spec.GetHost()}
		sel := spec.GetWorkloadSelector().GetMatchLabels()
		vis := model.NewVisibility(spec.GetExportTo(), c.Namespace, snap.Mesh.GetDefaultDestinationRuleExportTo())
		switch {
		case order(c.Namespace) == 3:
			cand.Reason = "namespace " + c.Namespace + " is neither the client's (" + sc.Namespace + "), the service's (" + svc.Namespace + ") nor the root namespace (" + root + ")"
		case len(sel) > 0 && c.Namespace != sc.Namespace:
			cand.Reason = "rules with a workloadSelector apply only to workloads of their own namespace (" + c.Namespace + ")"
		case len(sel) > 0 && !model.LabelsMatch(sel, sc.Proxy().Labels):
			cand.Reason = "its workloadSelector " + labelString(sel) + " does not select the client"
		case len(sel) == 0 && !vis.VisibleTo(sc.Namespace):
			cand.Reason = "exportTo " + strings.Join(exportTo(spec.GetExportTo(), snap.Mesh.GetDefaultDestinationRuleExportTo()), ",") + " does not include namespace " + sc.Namespace
		case !hasWinner:
			cand.Reason = "not selected for the client"
		case order(c.Namespace) > order(winner.Namespace):
			cand.Reason = "namespace " + c.Namespace + " is looked up after " + winner.Namespace + ", where " + winner.Namespace + "/" + winner.Name + " matches"
		default:
			w := winner.Spec.(*networking.DestinationRule)
			wh := snap.ResolveHost(w.GetHost(), winner.Namespace)
			switch {
			case len(w.GetWorkloadSelector().GetMatchLabels()) > 0 && len(sel) == 0:
				cand.Reason = winner.Namespace + "/" + winner.Name + " selects the client with a workloadSelector, which takes precedence"
			case model.MoreSpecificHost(wh, rh) && wh != rh:
				cand.Reason = winner.Namespace + "/" + winner.Name + " has a more specific host (" + w.GetHost() + ")"
			default:
				cand.Reason = winner.Namespace + "/" + winner.Name + " covers the same host and is older (or first by namespace/name); rules are not merged"
			}
		}
		out = append(out, cand)
	}
	return out
}

// cluster describes the policy of one outbound cluster.
func cluster(snap *model.Snapshot, svc *model.Service, p model.Port, subset string, dr config.Config, hasDR bool) Cluster {
	cl := Cluster{Name: model.ClusterName(model.Outbound, p.Number, subset, svc.Hostname), Port: p.Number, Subset: subset}
	var tp *networking.TrafficPolicy
	if hasDR {
		tp = model.MergeTrafficPolicy(dr.Spec.(*networking.DestinationRule), subset, p.Number)
	}
	cl.Policy = trafficPolicy(&networking.TrafficPolicy{
		LoadBalancer: tp.GetLoadBalancer(), ConnectionPool: tp.GetConnectionPool(), OutlierDetection: tp.GetOutlierDetection(),
	})
	if t := tp.GetTls(); t != nil {
		cl.TLS = t.GetMode().String()
		cl.TLSReason = "set by DestinationRule " + dr.Namespace + "/" + dr.Name
		return cl
	}
	auto := snap.Mesh.GetEnableAutoMtls() == nil || snap.Mesh.GetEnableAutoMtls().GetValue()
	nsPolicy := snap.PeerAuthentication(svc.Namespace, nil)
	switch {
	case svc.MeshExternal:
		cl.TLS, cl.TLSReason = "DISABLE", "mesh-external service: auto mTLS does not apply"
	case !auto:
		cl.TLS, cl.TLSReason = "DISABLE", "meshConfig.enableAutoMtls is off and no DestinationRule sets tls"
	case nsPolicy.Mode == model.MTLSDisable:
		decider := nsPolicy.Namespace
		if decider == "" || !setsMode(snap, decider) {
			decider = nsPolicy.Mesh
		}
		cl.TLS, cl.TLSReason = "DISABLE", "auto mTLS sends plaintext: PeerAuthentication "+decider+" disables mTLS for namespace "+svc.Namespace
	case svc.Resolution == model.Passthrough || tp.GetLoadBalancer().GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH:
		cl.TLS, cl.TLSReason = "ISTIO_MUTUAL (auto)", "auto mTLS, passthrough: mutual TLS only if every endpoint runs a proxy"
	default:
		cl.TLS, cl.TLSReason = "ISTIO_MUTUAL (auto)", "auto mTLS: mutual TLS to endpoints that run a proxy (tlsMode istio), plaintext to others"
	}
	return cl
}

// setsMode reports whether the PeerAuthentication "namespace/name" sets a
// mode (rather than inheriting).
func setsMode(snap *model.Snapshot, ref string) bool {
	c, ok := snap.Config(peerAuthnKey(ref))
	return ok && peerAuthnSetsMode(c)
}

// objectOf describes a config object of the snapshot.
func objectOf(snap *model.Snapshot, k config.Key) Object {
	o := Object{Kind: k.Kind.Kind, Namespace: k.Namespace, Name: k.Name}
	if c, ok := snap.Config(k); ok && c.Source.File != "" {
		o.Source = c.Source.File
		if c.Source.Document > 0 {
			o.Source += ":" + strconv.Itoa(c.Source.Document)
		}
	}
	return o
}

// conflicts finds workload ports that accept plaintext only while the
// clients' cluster for them sends mutual TLS, and the reverse.
func conflicts(clusters []Cluster, mtls []PortMTLS, ports []model.Port, eps []*model.Endpoint) []string {
	var out []string
	for _, ep := range eps {
		for _, p := range ports {
			target := ep.PortFor(p)
			var mode string
			for _, m := range mtls {
				if m.Workload == ep.WorkloadName && m.Port == target {
					mode = m.Mode
				}
			}
			for _, c := range clusters {
				if c.Port != p.Number {
					continue
				}
				if c.Subset != "" && !slices.ContainsFunc(c.selects, func(s string) bool { return s == ep.WorkloadName }) {
					continue
				}
				switch {
				case mode == "DISABLE" && strings.HasPrefix(c.TLS, "ISTIO_MUTUAL"):
					out = append(out, fmt.Sprintf("%s sends mutual TLS (%s) but %s port %d accepts plaintext only (DISABLE): those requests fail; set tls.mode DISABLE for that port in the DestinationRule", c.Name, c.TLS, ep.WorkloadName, target))
				case mode == "STRICT" && c.TLS == "DISABLE":
					out = append(out, fmt.Sprintf("%s sends plaintext but %s port %d accepts mutual TLS only (STRICT): those requests fail", c.Name, ep.WorkloadName, target))
				}
			}
		}
	}
	return out
}
