package validation

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// meshGateway is the reserved gateway name for the sidecars of the mesh.
const meshGateway = "mesh"

func validateVirtualService(r *report, p fieldPath, namespace string, vs *networking.VirtualService) {
	delegate := len(vs.Hosts) == 0
	if delegate {
		// A VirtualService without hosts can only be the target of a
		// delegate route.
		if len(vs.Gateways) != 0 {
			r.errorf(p.child("gateways"), "a delegate virtual service (one without hosts) must not list gateways")
		}
		if len(vs.Tls) != 0 {
			r.errorf(p.child("tls"), "a delegate virtual service (one without hosts) must not have tls routes")
		}
		if len(vs.Tcp) != 0 {
			r.errorf(p.child("tcp"), "a delegate virtual service (one without hosts) must not have tcp routes")
		}
	}
	validateGatewayNames(r, p.child("gateways"), vs.Gateways)
	toGateway := boundToGateway(vs.Gateways)

	if !toGateway {
		for i, h := range vs.Http {
			for j, m := range h.GetMatch() {
				mp := p.child("http").index(i).child("match").index(j)
				for _, k := range sortedKeys(m.GetHeaders()) {
					if isJWTClaimRoute(k) {
						r.errorf(mp.child("headers").key(k), "routing on JWT claims is only supported for virtual services bound to gateways")
					}
				}
				for _, k := range sortedKeys(m.GetWithoutHeaders()) {
					if isJWTClaimRoute(k) {
						r.errorf(mp.child("withoutHeaders").key(k), "routing on JWT claims is only supported for virtual services bound to gateways")
					}
				}
			}
		}
	}

	sni := hasSNIHosts(vs)
	allValid := true
	for i, h := range vs.Hosts {
		hp := p.child("hosts").index(i)
		problem := wildcardDomainProblem(h)
		if toGateway {
			problem = gatewayHostProblem(sni, h)
		}
		switch {
		case problem != "" && !isIP(h):
			r.errorf(hp, "%s", problem)
			allValid = false
		case problem == "" && !toGateway && h == "*":
			r.errorf(hp, "wildcard host \"*\" is not allowed for virtual services bound to the mesh; bind the virtual service to a gateway or name the hosts")
			allValid = false
		}
	}
	if allValid {
		for i := range vs.Hosts {
			for j := i + 1; j < len(vs.Hosts); j++ {
				if hostMatches(vs.Hosts[i], vs.Hosts[j]) {
					r.errorf(p.child("hosts").index(j), "duplicate host: %q overlaps %q", vs.Hosts[j], vs.Hosts[i])
				}
			}
		}
	}

	if len(vs.Http) == 0 && len(vs.Tcp) == 0 && len(vs.Tls) == 0 {
		r.errorf(p, "at least one http, tcp or tls route is required")
	}
	for i, h := range vs.Http {
		hp := p.child("http").index(i)
		if h == nil {
			r.errorf(hp, "must not be null")
			continue
		}
		validateHTTPRoute(r, hp, h, delegate)
	}
	for i, t := range vs.Tls {
		validateTLSRoute(r, p.child("tls").index(i), t, vs, toGateway)
	}
	for i, t := range vs.Tcp {
		validateTCPRoute(r, p.child("tcp").index(i), t)
	}
	validateExportTo(r, p.child("exportTo"), namespace, vs.ExportTo, false, false)
	warnUnreachable(r, p, vs)
}

// boundToGateway reports whether a VirtualService applies to gateways only
// (it lists gateways and "mesh" is not among them).
func boundToGateway(gateways []string) bool {
	if len(gateways) == 0 {
		return false
	}
	for _, g := range gateways {
		if g == meshGateway {
			return false
		}
	}
	return true
}

func hasSNIHosts(vs *networking.VirtualService) bool {
	for _, t := range vs.Tls {
		for _, m := range t.GetMatch() {
			if len(m.GetSniHosts()) > 0 {
				return true
			}
		}
	}
	return false
}

// gatewayHostProblem checks a host of a gateway-bound VirtualService. With
// SNI matching, the names Istio generates for AUTO_PASSTHROUGH
// ("outbound_.80_._.reviews.default.svc.cluster.local") are accepted too.
func gatewayHostProblem(sni bool, host string) string {
	if p := domainLengthProblem(host); p != "" {
		return p
	}
	if sni && strings.HasPrefix(host, "outbound_") {
		parts := strings.Split(host, "_")
		format := "outbound_.<port>_._.<hostname>"
		if len(parts) < 4 {
			return fmt.Sprintf("invalid hostname %q: want the form %s", host, format)
		}
		if port := strings.Trim(parts[1], "."); !strings.ContainsAny(port, "0123456789") {
			return fmt.Sprintf("invalid hostname %q: port %q is not a number; want the form %s", host, port, format)
		}
		if name := strings.Trim(parts[3], "."); !strings.ContainsFunc(name, isLetter) {
			return fmt.Sprintf("invalid hostname %q: want the form %s", host, format)
		}
		return ""
	}
	return wildcardDomainProblem(host)
}

func isLetter(c rune) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// isJWTClaimRoute reports whether a header name is Istio's pseudo header for
// routing on JWT claims: "@request.auth.claims.sub" or
// "@request.auth.claims[nested][key]".
func isJWTClaimRoute(name string) bool {
	const prefix = "@request.auth.claims"
	rest, ok := strings.CutPrefix(name, prefix)
	switch {
	case !ok:
		return false
	case strings.HasPrefix(rest, "."):
		return len(rest) > 1
	case strings.HasPrefix(rest, "["):
		return strings.HasSuffix(rest, "]") && !strings.Contains(rest, "[]")
	}
	return false
}

// validateGatewayNames checks "namespace/name" gateway references (and the
// legacy bare or "name.namespace" forms).
func validateGatewayNames(r *report, p fieldPath, names []string) {
	for i, g := range names {
		gp := p.index(i)
		ns, name, ok := strings.Cut(g, "/")
		if !ok {
			if parts := strings.Split(g, "."); len(parts) > 1 {
				r.warnf(gp, "legacy gateway name format %q; prefer namespace/name: %q", g, parts[1]+"/"+parts[0])
			}
			r.check(gp, fqdnProblem(g))
			continue
		}
		if ns == "" || name == "" {
			r.errorf(gp, "invalid gateway %q: namespace and name must not be empty", g)
			continue
		}
		if !isDNS1123Label(ns) {
			r.errorf(gp, "invalid gateway %q: namespace %q is not a valid DNS-1123 label", g, ns)
		}
		if !isDNS1123Label(name) {
			r.errorf(gp, "invalid gateway %q: name %q is not a valid DNS-1123 label", g, name)
		}
	}
}

func validateDestination(r *report, p fieldPath, d *networking.Destination) {
	if d.Host == "*" {
		r.errorf(p.child("host"), "invalid destination host \"*\"")
	} else {
		r.check(p.child("host"), wildcardDomainProblem(d.Host))
	}
	if d.Subset != "" && !isDNS1123Label(d.Subset) {
		r.errorf(p.child("subset"), "invalid subset name %q: must be a DNS-1123 label", d.Subset)
	}
	if d.Port != nil {
		r.check(p.child("port").child("number"), portProblem(d.Port.Number))
	}
}

// routeDestination is a weighted destination of a route: RouteDestination
// in TCP and TLS routes, HTTPRouteDestination (which adds header
// operations) in HTTP routes.
type routeDestination interface {
	*networking.RouteDestination | *networking.HTTPRouteDestination
	GetDestination() *networking.Destination
	GetWeight() int32
}

// validateRouteDestinations checks each destination of a route, and that
// the weights of several do not add up to zero.
func validateRouteDestinations[D routeDestination](r *report, p fieldPath, dests []D) {
	var total int64
	for i, d := range dests {
		dp := p.index(i)
		if d == nil {
			r.errorf(dp, "must not be null")
			continue
		}
		if dest := d.GetDestination(); dest == nil {
			r.errorf(dp.child("destination"), "required")
		} else {
			validateDestination(r, dp.child("destination"), dest)
		}
		if h, ok := any(d).(*networking.HTTPRouteDestination); ok {
			validateHeaderOps(r, dp.child("headers"), h.Headers)
		}
		if d.GetWeight() < 0 {
			r.errorf(dp.child("weight"), "must not be negative")
		}
		total += int64(d.GetWeight())
	}
	if len(dests) > 1 && total == 0 {
		r.errorf(p, "the weights of the destinations add up to 0; at least one must be positive")
	}
}

func validateTLSRoute(r *report, p fieldPath, t *networking.TLSRoute, vs *networking.VirtualService, toGateway bool) {
	if t == nil {
		r.errorf(p, "must not be null")
		return
	}
	if len(t.Match) == 0 {
		r.errorf(p.child("match"), "at least one match is required")
	}
	for i, m := range t.Match {
		mp := p.child("match").index(i)
		if m == nil {
			r.errorf(mp, "must not be null")
			continue
		}
		if len(m.SniHosts) == 0 {
			r.errorf(mp.child("sniHosts"), "at least one SNI host is required")
		}
		for j, sni := range m.SniHosts {
			validateSNIHost(r, mp.child("sniHosts").index(j), sni, vs.Hosts, toGateway)
		}
		validateL4Match(r, mp, m, "")
	}
	if len(t.Route) == 0 {
		r.errorf(p.child("route"), "at least one destination is required")
	}
	validateRouteDestinations(r, p.child("route"), t.Route)
}

// validateSNIHost checks an SNI host of a TLS route: a valid name that the
// virtual service's hosts cover.
func validateSNIHost(r *report, p fieldPath, sni string, hosts []string, toGateway bool) {
	problem := wildcardDomainProblem(sni)
	if toGateway {
		problem = gatewayHostProblem(true, sni)
	}
	if problem != "" {
		if isIP(sni) {
			r.warnf(p, "%q is an IP address; SNI carries host names and most clients never send an IP", sni)
			return
		}
		r.errorf(p, "%s", problem)
		return
	}
	for _, h := range hosts {
		if hostSubsetOf(sni, h) {
			return
		}
	}
	r.errorf(p, "SNI host %q is not covered by any of the virtual service hosts [%s]", sni, strings.Join(hosts, ", "))
}

func validateTCPRoute(r *report, p fieldPath, t *networking.TCPRoute) {
	if t == nil {
		r.errorf(p, "must not be null")
		return
	}
	for i, m := range t.Match {
		mp := p.child("match").index(i)
		if m == nil {
			r.errorf(mp, "must not be null")
			continue
		}
		validateL4Match(r, mp, m, m.SourceSubnet) //nolint:staticcheck // deprecated but still served
	}
	if len(t.Route) == 0 {
		r.errorf(p.child("route"), "at least one destination is required")
	}
	validateRouteDestinations(r, p.child("route"), t.Route)
}

// l4Match is what the matches of TLS routes (TLSMatchAttributes) and TCP
// routes (L4MatchAttributes) have in common.
type l4Match interface {
	GetDestinationSubnets() []string
	GetPort() uint32
	GetSourceLabels() map[string]string
	GetGateways() []string
	GetSourceNamespace() string
}

// validateL4Match checks the attributes TLS and TCP matches share at mp;
// sourceSubnet is the TCP match's deprecated field, "" for TLS.
func validateL4Match(r *report, mp fieldPath, m l4Match, sourceSubnet string) {
	for j, s := range m.GetDestinationSubnets() {
		r.check(mp.child("destinationSubnets").index(j), subnetProblem(s))
	}
	if sourceSubnet != "" {
		r.check(mp.child("sourceSubnet"), subnetProblem(sourceSubnet))
	}
	if port := m.GetPort(); port != 0 {
		r.check(mp.child("port"), portProblem(port))
	}
	validateLabels(r, mp.child("sourceLabels"), m.GetSourceLabels(), false)
	validateGatewayNames(r, mp.child("gateways"), m.GetGateways())
	if ns := m.GetSourceNamespace(); ns != "" && !isDNS1123Label(ns) {
		r.errorf(mp.child("sourceNamespace"), "invalid namespace %q", ns)
	}
}

// warnUnreachable warns about routes that can never be selected: routes
// after one without matches, and matches identical to an earlier one.
func warnUnreachable(r *report, p fieldPath, vs *networking.VirtualService) {
	type rule struct {
		matches []proto.Message
	}
	check := func(kind string, rules []rule) {
		catchAll := -1
		var seen []proto.Message
		var seenAt []int
		for i, rl := range rules {
			rp := p.child(kind).index(i)
			if catchAll >= 0 {
				r.warnf(rp, "route is never used: %s[%d] has no match and takes all traffic first", kind, catchAll)
				continue
			}
			if len(rl.matches) == 0 {
				catchAll = i
				continue
			}
			dups := 0
			for j, m := range rl.matches {
				for k, s := range seen {
					if proto.Equal(m, s) {
						r.warnf(rp.child("match").index(j), "match is never used: %s[%d] has the same match", kind, seenAt[k])
						dups++
						break
					}
				}
				seen = append(seen, m)
				seenAt = append(seenAt, i)
			}
			if dups == len(rl.matches) {
				r.warnf(rp, "route is never used: all its matches are taken by earlier routes")
			}
		}
	}
	httpRules := make([]rule, len(vs.Http))
	for i, h := range vs.Http {
		for _, m := range h.GetMatch() {
			if m == nil {
				continue
			}
			c := proto.Clone(m).(*networking.HTTPMatchRequest)
			c.Name = "" // names do not change what matches
			httpRules[i].matches = append(httpRules[i].matches, c)
		}
	}
	check("http", httpRules)
	tcpRules := make([]rule, len(vs.Tcp))
	for i, t := range vs.Tcp {
		for _, m := range t.GetMatch() {
			if m != nil {
				tcpRules[i].matches = append(tcpRules[i].matches, m)
			}
		}
	}
	check("tcp", tcpRules)
}
