package route

import (
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

// Consistent hashing is a cluster load balancer in Envoy, but the key it
// hashes on is chosen per route: these read the DestinationRule of the
// destination and turn its consistentHash into the route's hash_policy.

// hashRules finds the DestinationRules that matter for hashing during one
// generation. Scope.DestinationRule scans every rule, so it is only asked
// about hosts some hashing rule could cover, once per host.
type hashRules struct {
	sc    *model.Scope
	exact map[string]bool // hosts of rules that hash somewhere
	wild  []string        // wildcard hosts of such rules
	memo  map[string]*networking.DestinationRule
}

func newHashRules(sc *model.Scope) *hashRules {
	h := &hashRules{sc: sc, exact: map[string]bool{}, memo: map[string]*networking.DestinationRule{}}
	snap := sc.Snapshot()
	for _, c := range snap.Configs(schema.DestinationRule) {
		dr := c.Spec.(*networking.DestinationRule)
		if !hashes(dr) {
			continue
		}
		host := snap.ResolveHost(dr.GetHost(), c.Namespace)
		if strings.HasPrefix(host, "*") {
			h.wild = append(h.wild, host)
		} else {
			h.exact[host] = true
		}
	}
	return h
}

// hashes reports whether a rule configures consistent hashing anywhere.
func hashes(dr *networking.DestinationRule) bool {
	tps := []*networking.TrafficPolicy{dr.GetTrafficPolicy()}
	for _, ss := range dr.GetSubsets() {
		tps = append(tps, ss.GetTrafficPolicy())
	}
	for _, tp := range tps {
		if tp.GetLoadBalancer().GetConsistentHash() != nil {
			return true
		}
		for _, pls := range tp.GetPortLevelSettings() {
			if pls.GetLoadBalancer().GetConsistentHash() != nil {
				return true
			}
		}
	}
	return false
}

// rule returns the DestinationRule in force for host when hashing may be
// configured for it (nil otherwise).
func (h *hashRules) rule(host string) *networking.DestinationRule {
	if dr, ok := h.memo[host]; ok {
		return dr
	}
	var dr *networking.DestinationRule
	if h.mayHash(host) {
		if c, ok := h.sc.DestinationRule(host); ok {
			dr = c.Spec.(*networking.DestinationRule)
		}
	}
	h.memo[host] = dr
	return dr
}

func (h *hashRules) mayHash(host string) bool {
	if h.exact[host] {
		return true
	}
	for _, w := range h.wild {
		if model.HostMatches(w, host) {
			return true
		}
	}
	return false
}

// forDestination returns the consistentHash settings for a route
// destination, most specific first: the subset's port-level settings, the
// subset's, the rule's port-level settings (when the destination names a
// port), the rule's.
func (h *hashRules) forDestination(d *networking.Destination, ns string) *networking.LoadBalancerSettings_ConsistentHashLB {
	if d.GetHost() == "" {
		return nil
	}
	host := d.GetHost()
	if ns != "" {
		host = h.sc.Snapshot().ResolveHost(host, ns)
	}
	dr := h.rule(host)
	if dr == nil {
		return nil
	}
	hash := dr.GetTrafficPolicy().GetLoadBalancer().GetConsistentHash()
	portHash := portLevelHash(d, dr.GetTrafficPolicy().GetPortLevelSettings())
	var subsetHash, subsetPortHash *networking.LoadBalancerSettings_ConsistentHashLB
	for _, ss := range dr.GetSubsets() {
		if ss.GetName() == d.GetSubset() {
			subsetHash = ss.GetTrafficPolicy().GetLoadBalancer().GetConsistentHash()
			subsetPortHash = portLevelHash(d, ss.GetTrafficPolicy().GetPortLevelSettings())
			break
		}
	}
	switch {
	case subsetPortHash != nil:
		return subsetPortHash
	case subsetHash != nil:
		return subsetHash
	case portHash != nil:
		return portHash
	}
	return hash
}

// portLevelHash is the consistentHash of the port settings for the
// destination's explicit port.
func portLevelHash(d *networking.Destination, pls []*networking.TrafficPolicy_PortTrafficPolicy) *networking.LoadBalancerSettings_ConsistentHashLB {
	n := d.GetPort().GetNumber()
	if n == 0 {
		return nil
	}
	for _, s := range pls {
		if s.GetPort().GetNumber() == n {
			return s.GetLoadBalancer().GetConsistentHash()
		}
	}
	return nil
}

// forService returns the consistentHash settings for a service's default
// route: the port's settings when they hash, else the rule's.
func (h *hashRules) forService(svc *model.Service, port uint32) *networking.LoadBalancerSettings_ConsistentHashLB {
	dr := h.rule(svc.Hostname)
	if dr == nil {
		return nil
	}
	tp := dr.GetTrafficPolicy()
	hash := tp.GetLoadBalancer().GetConsistentHash()
	for _, s := range tp.GetPortLevelSettings() {
		if s.GetPort().GetNumber() == port {
			if h := s.GetLoadBalancer().GetConsistentHash(); h != nil {
				hash = h
			}
			break
		}
	}
	return hash
}

// hashPolicy converts the hash key of consistentHash (nil: none).
func hashPolicy(h *networking.LoadBalancerSettings_ConsistentHashLB) *routev3.RouteAction_HashPolicy {
	switch key := h.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: key.HttpHeaderName},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		ck := key.HttpCookie
		cookie := &routev3.RouteAction_HashPolicy_Cookie{Name: ck.GetName(), Path: ck.GetPath()}
		if ck.GetTtl() != nil {
			cookie.Ttl = copyDuration(ck.GetTtl())
		}
		for _, a := range ck.GetAttributes() {
			cookie.Attributes = append(cookie.Attributes, &routev3.RouteAction_HashPolicy_CookieAttribute{Name: a.GetName(), Value: a.GetValue()})
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: cookie}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: key.UseSourceIp},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: key.HttpQueryParameterName},
		}}
	}
	return nil
}
