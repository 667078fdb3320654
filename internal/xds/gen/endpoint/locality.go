package endpoint

import (
	"math"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
)

// Topology labels Istio adds to proxy and endpoint labels, so that
// failoverPriority can name them.
const (
	LabelNetwork = "topology.istio.io/network"
	LabelRegion  = "topology.kubernetes.io/region"
	LabelZone    = "topology.kubernetes.io/zone"
	LabelSubzone = "topology.istio.io/subzone"
)

// LocalityLBSetting returns the locality load-balancing setting in force,
// or nil when locality load balancing is off: the DestinationRule's setting
// unless it says enabled: false, else the mesh's unless it says enabled:
// false. This is Istio's precedence; the cluster generator uses it to
// decide on locality_weighted_lb_config, Assignment to set priorities and
// weights, so both sides agree.
func LocalityLBSetting(mesh, dr *networking.LocalityLoadBalancerSetting) *networking.LocalityLoadBalancerSetting {
	if dr != nil {
		if dr.GetEnabled() != nil && !dr.GetEnabled().GetValue() {
			return nil
		}
		return dr
	}
	if mesh.GetEnabled() != nil && !mesh.GetEnabled().GetValue() {
		return nil
	}
	return mesh
}

// applyLocalityLB applies distribute weights, or — only when outlier
// detection is on, since Envoy never fails over otherwise — failover
// priorities (failoverPriority labels, then region failover rules and the
// proxy-relative region/zone/subzone priority).
func applyLocalityLB(cla *endpointv3.ClusterLoadAssignment, groups []*localityGroup, proxy *model.Proxy,
	setting *networking.LocalityLoadBalancerSetting, outlierDetection bool,
) {
	region, zone, subzone := model.SplitLocality(proxy.Locality)
	proxyLocality := &core.Locality{Region: region, Zone: zone, SubZone: subzone}
	switch {
	case len(setting.GetDistribute()) > 0:
		applyLocalityWeights(proxyLocality, cla, setting.GetDistribute())
	case !outlierDetection:
	case len(setting.GetFailoverPriority()) > 0:
		applyFailoverPriorities(cla, groups, topologyLabels(proxy.Labels, proxy.Locality, proxy.Network), setting.GetFailoverPriority())
		if len(setting.GetFailover()) > 0 {
			applyLocalityFailover(proxyLocality, cla, setting.GetFailover())
		}
	default:
		applyLocalityFailover(proxyLocality, cla, setting.GetFailover())
	}
}

// localityMatch matches a locality against a rule "region/zone/subzone"
// where each part may be "*" and missing parts match anything.
func localityMatch(l *core.Locality, rule string) bool {
	r, z, s := model.SplitLocality(rule)
	return (r == "*" || l.GetRegion() == r) &&
		(z == "*" || z == "" || l.GetZone() == z) &&
		(s == "*" || s == "" || l.GetSubZone() == s)
}

// lbPriority is 0 for the proxy's own subzone, 1 for its zone, 2 for its
// region and 3 elsewhere.
func lbPriority(proxy, ep *core.Locality) int {
	switch {
	case proxy.GetRegion() != ep.GetRegion():
		return 3
	case proxy.GetZone() != ep.GetZone():
		return 2
	case proxy.GetSubZone() != ep.GetSubZone():
		return 1
	}
	return 0
}

// applyLocalityWeights sets locality weights from the first distribute rule
// whose "from" matches the proxy. Each "to" entry's weight is shared by the
// localities it matches, in proportion to their own weights; localities no
// entry matches lose their endpoints. Istio walks "to" in map order; we
// walk it most specific first (fewest wildcards, then by name) so that
// overlapping entries resolve the same way every time.
func applyLocalityWeights(proxy *core.Locality, cla *endpointv3.ClusterLoadAssignment, rules []*networking.LocalityLoadBalancerSetting_Distribute) {
	for _, rule := range rules {
		if rule == nil || !localityMatch(proxy, rule.GetFrom()) {
			continue
		}
		unmatched := map[int]bool{}
		for i := range cla.Endpoints {
			unmatched[i] = true
		}
		for _, to := range sortedTargets(rule.GetTo()) {
			weight := rule.GetTo()[to]
			orig := map[int]uint32{}
			var total uint32
			for i, lle := range cla.Endpoints {
				if !unmatched[i] || !localityMatch(lle.GetLocality(), to) {
					continue
				}
				delete(unmatched, i)
				w := uint32(1)
				if lle.GetLoadBalancingWeight() != nil {
					w = lle.GetLoadBalancingWeight().GetValue()
				}
				orig[i] = w
				total += w
			}
			for i, w := range orig {
				if dw := float64(w) * float64(weight) / float64(total); dw > 0 {
					cla.Endpoints[i].LoadBalancingWeight = wrapperspb.UInt32(uint32(math.Ceil(dw)))
				}
			}
		}
		for i := range unmatched {
			cla.Endpoints[i].LbEndpoints = nil
		}
		return
	}
}

func sortedTargets(to map[string]uint32) []string {
	keys := make([]string, 0, len(to))
	for k := range to {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		wi, wj := strings.Count(keys[i], "*"), strings.Count(keys[j], "*")
		if wi != wj {
			return wi < wj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// applyLocalityFailover sets priorities from the proxy's locality: 0 same
// subzone, 1 same zone, 2 same region, 3 other regions, 4 regions a
// failover rule for the proxy's region does not name. Priorities already
// set by failoverPriority are kept as the major key. The result is
// compacted to 0..N without gaps, as Envoy requires.
func applyLocalityFailover(proxy *core.Locality, cla *endpointv3.ClusterLoadAssignment, failover []*networking.LocalityLoadBalancerSetting_Failover) {
	byPriority := map[int][]int{}
	for i, lle := range cla.Endpoints {
		p := lbPriority(proxy, lle.GetLocality())
		if p == 3 {
			for _, f := range failover {
				if f.GetFrom() == proxy.GetRegion() {
					if lle.GetLocality().GetRegion() != f.GetTo() {
						p = 4
					}
					break
				}
			}
		}
		p += int(lle.Priority) * 5
		lle.Priority = uint32(p)
		byPriority[p] = append(byPriority[p], i)
	}
	compact(cla.Endpoints, byPriority)
}

func compact(lles []*endpointv3.LocalityLbEndpoints, byPriority map[int][]int) {
	ps := make([]int, 0, len(byPriority))
	for p := range byPriority {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	for i, p := range ps {
		for _, idx := range byPriority[p] {
			lles[idx].Priority = uint32(i)
		}
	}
}

// applyFailoverPriorities splits each locality by how many of the
// failoverPriority labels (in order) an endpoint shares with the proxy: all
// of them is priority 0, none of them (first label differs) is the lowest.
// "label=value" entries compare endpoints against value instead of the
// proxy's label.
func applyFailoverPriorities(cla *endpointv3.ClusterLoadAssignment, groups []*localityGroup, proxyLabels map[string]string, priorities []string) {
	if len(proxyLabels) == 0 || len(groups) == 0 {
		return
	}
	names := make([]string, 0, len(priorities))
	override := map[string]string{}
	for _, p := range priorities {
		parts := strings.Split(p, "=")
		names = append(names, parts[0])
		if len(parts) == 2 {
			override[parts[0]] = parts[1]
		}
	}
	var out []*endpointv3.LocalityLbEndpoints
	for _, g := range groups {
		byPriority := map[int][]int{}
		for i, ep := range g.endpoints {
			epLabels := topologyLabels(ep.Labels, ep.Locality, ep.Network)
			p := 0
			for j, name := range names {
				want, ok := override[name]
				if !ok {
					want = proxyLabels[name]
				}
				if want != epLabels[name] {
					p = len(names) - j
					break
				}
			}
			byPriority[p] = append(byPriority[p], i)
		}
		ps := make([]int, 0, len(byPriority))
		for p := range byPriority {
			ps = append(ps, p)
		}
		sort.Ints(ps)
		for _, p := range ps {
			split := &endpointv3.LocalityLbEndpoints{Locality: g.lle.GetLocality(), Priority: uint32(p)}
			var w uint32
			for _, idx := range byPriority[p] {
				split.LbEndpoints = append(split.LbEndpoints, g.lle.LbEndpoints[idx])
				w += g.lle.LbEndpoints[idx].GetLoadBalancingWeight().GetValue()
			}
			split.LoadBalancingWeight = wrapperspb.UInt32(w)
			out = append(out, split)
		}
	}
	byPriority := map[int][]int{}
	for i, lle := range out {
		byPriority[int(lle.Priority)] = append(byPriority[int(lle.Priority)], i)
	}
	compact(out, byPriority)
	cla.Endpoints = out
}

// topologyLabels returns labels plus Istio's topology labels derived from
// locality and network (existing labels win).
func topologyLabels(labels map[string]string, locality, network string) map[string]string {
	out := make(map[string]string, len(labels)+4)
	for k, v := range labels {
		out[k] = v
	}
	add := func(k, v string) {
		if _, ok := out[k]; !ok && v != "" {
			out[k] = v
		}
	}
	region, zone, subzone := model.SplitLocality(locality)
	add(LabelRegion, region)
	add(LabelZone, zone)
	add(LabelSubzone, subzone)
	add(LabelNetwork, network)
	return out
}
