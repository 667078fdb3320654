package describe

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

// This file turns API messages into short, stable, one-line summaries.

// labelString is "k=v,k=v", sorted; "" for none.
func labelString(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func dur(d *durationpb.Duration) string { return d.AsDuration().String() }

func stringMatch(m *networking.StringMatch) string {
	switch {
	case m == nil:
		return ""
	case m.GetExact() != "":
		return "exact " + strconv.Quote(m.GetExact())
	case m.GetPrefix() != "":
		return "prefix " + strconv.Quote(m.GetPrefix())
	case m.GetRegex() != "":
		return "regex " + strconv.Quote(m.GetRegex())
	}
	return "present"
}

func mapMatches(what string, m map[string]*networking.StringMatch, negate bool) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if negate {
			out = append(out, fmt.Sprintf("%s %s not %s", what, k, stringMatch(m[k])))
		} else {
			out = append(out, fmt.Sprintf("%s %s %s", what, k, stringMatch(m[k])))
		}
	}
	return out
}

// httpMatch summarises one HTTPMatchRequest: its conditions, ANDed.
func httpMatch(m *networking.HTTPMatchRequest) string {
	var c []string
	if m.GetName() != "" {
		c = append(c, "["+m.GetName()+"]")
	}
	if u := m.GetUri(); u != nil {
		s := "uri " + stringMatch(u)
		if m.GetIgnoreUriCase() {
			s += " (any case)"
		}
		c = append(c, s)
	}
	for _, f := range []struct {
		name string
		m    *networking.StringMatch
	}{{"scheme", m.GetScheme()}, {"method", m.GetMethod()}, {"authority", m.GetAuthority()}} {
		if f.m != nil {
			c = append(c, f.name+" "+stringMatch(f.m))
		}
	}
	c = append(c, mapMatches("header", m.GetHeaders(), false)...)
	c = append(c, mapMatches("header", m.GetWithoutHeaders(), true)...)
	c = append(c, mapMatches("query", m.GetQueryParams(), false)...)
	c = append(c, commonMatch(m.GetPort(), m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways())...)
	if len(c) == 0 {
		return "any request"
	}
	return strings.Join(c, ", ")
}

func commonMatch(port uint32, labels map[string]string, ns string, gateways []string) []string {
	var c []string
	if port != 0 {
		c = append(c, "port "+strconv.FormatUint(uint64(port), 10))
	}
	if len(labels) > 0 {
		c = append(c, "source labels "+labelString(labels))
	}
	if ns != "" {
		c = append(c, "source namespace "+ns)
	}
	if len(gateways) > 0 {
		c = append(c, "gateways "+strings.Join(gateways, ","))
	}
	return c
}

func l4Match(m *networking.L4MatchAttributes) string {
	c := commonMatch(m.GetPort(), m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways())
	if len(m.GetDestinationSubnets()) > 0 {
		c = append(c, "destination subnets "+strings.Join(m.GetDestinationSubnets(), ","))
	}
	if len(c) == 0 {
		return "any connection"
	}
	return strings.Join(c, ", ")
}

func tlsMatch(m *networking.TLSMatchAttributes) string {
	c := []string{"sni " + strings.Join(m.GetSniHosts(), ",")}
	c = append(c, commonMatch(m.GetPort(), m.GetSourceLabels(), m.GetSourceNamespace(), m.GetGateways())...)
	return strings.Join(c, ", ")
}

func percent(p *networking.Percent, legacy int32) string {
	if p != nil {
		return strconv.FormatFloat(p.GetValue(), 'f', -1, 64) + "%"
	}
	if legacy != 0 {
		return strconv.Itoa(int(legacy)) + "%"
	}
	return "100%"
}

func destString(d *networking.Destination) string {
	s := d.GetHost()
	if d.GetSubset() != "" {
		s += " subset " + d.GetSubset()
	}
	if n := d.GetPort().GetNumber(); n != 0 {
		s += " port " + strconv.FormatUint(uint64(n), 10)
	}
	return s
}

// httpActions summarises what an HTTP route does besides forwarding.
func httpActions(r *networking.HTTPRoute) []string {
	var a []string
	if d := r.GetDelegate(); d != nil {
		a = append(a, "delegate to VirtualService "+d.GetNamespace()+"/"+d.GetName())
	}
	if rd := r.GetRedirect(); rd != nil {
		code := rd.GetRedirectCode()
		if code == 0 {
			code = 301
		}
		var parts []string
		for _, f := range [][2]string{{"scheme", rd.GetScheme()}, {"authority", rd.GetAuthority()}, {"uri", rd.GetUri()}, {"prefix", rd.GetPrefixRewrite()}} {
			if f[1] != "" {
				parts = append(parts, f[0]+" "+f[1])
			}
		}
		a = append(a, fmt.Sprintf("redirect %d %s", code, strings.Join(parts, ", ")))
	}
	if dr := r.GetDirectResponse(); dr != nil {
		a = append(a, fmt.Sprintf("direct response %d", dr.GetStatus()))
	}
	if rw := r.GetRewrite(); rw != nil {
		var parts []string
		if rw.GetUri() != "" {
			parts = append(parts, "uri "+rw.GetUri())
		}
		if rx := rw.GetUriRegexRewrite(); rx != nil {
			parts = append(parts, "uri regex "+strconv.Quote(rx.GetMatch())+" → "+strconv.Quote(rx.GetRewrite()))
		}
		if rw.GetAuthority() != "" {
			parts = append(parts, "authority "+rw.GetAuthority())
		}
		a = append(a, "rewrite "+strings.Join(parts, ", "))
	}
	if t := r.GetTimeout(); t != nil {
		a = append(a, "timeout "+dur(t))
	}
	if rt := r.GetRetries(); rt != nil {
		s := fmt.Sprintf("retries %d", rt.GetAttempts())
		if rt.GetAttempts() == 0 {
			s = "retries off"
		}
		if rt.GetPerTryTimeout() != nil {
			s += ", per try " + dur(rt.GetPerTryTimeout())
		}
		if rt.GetRetryOn() != "" {
			s += ", on " + rt.GetRetryOn()
		}
		a = append(a, s)
	}
	if f := r.GetFault(); f != nil {
		if d := f.GetDelay(); d != nil {
			a = append(a, fmt.Sprintf("fault: delay %s for %s of requests", dur(d.GetFixedDelay()), percent(d.GetPercentage(), d.GetPercent())))
		}
		if ab := f.GetAbort(); ab != nil {
			status := fmt.Sprintf("HTTP %d", ab.GetHttpStatus())
			if g := ab.GetGrpcStatus(); g != "" {
				status = "gRPC " + g
			}
			a = append(a, fmt.Sprintf("fault: abort with %s for %s of requests", status, percent(ab.GetPercentage(), 0)))
		}
	}
	if m := r.GetMirror(); m != nil {
		p := "100%"
		if r.GetMirrorPercentage() != nil {
			p = percent(r.GetMirrorPercentage(), 0)
		} else if r.GetMirrorPercent() != nil {
			p = strconv.Itoa(int(r.GetMirrorPercent().GetValue())) + "%"
		}
		a = append(a, "mirror "+p+" to "+destString(m))
	}
	for _, m := range r.GetMirrors() {
		a = append(a, "mirror "+percent(m.GetPercentage(), 0)+" to "+destString(m.GetDestination()))
	}
	if h := r.GetHeaders(); h != nil {
		for _, side := range []struct {
			name string
			ops  *networking.Headers_HeaderOperations
		}{{"request", h.GetRequest()}, {"response", h.GetResponse()}} {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(side.ops.GetSet())) {
				parts = append(parts, "set "+k)
			}
			for _, k := range slices.Sorted(maps.Keys(side.ops.GetAdd())) {
				parts = append(parts, "add "+k)
			}
			for _, k := range side.ops.GetRemove() {
				parts = append(parts, "remove "+k)
			}
			if len(parts) > 0 {
				a = append(a, side.name+" headers: "+strings.Join(parts, ", "))
			}
		}
	}
	if r.GetCorsPolicy() != nil {
		a = append(a, "CORS policy")
	}
	return a
}

// trafficPolicy summarises a traffic policy, one line per setting.
func trafficPolicy(tp *networking.TrafficPolicy) []string {
	if tp == nil {
		return nil
	}
	var out []string
	if lb := tp.GetLoadBalancer(); lb != nil {
		out = append(out, "load balancer: "+loadBalancer(lb))
	}
	if cp := tp.GetConnectionPool(); cp != nil {
		var parts []string
		if t := cp.GetTcp(); t != nil {
			if t.GetMaxConnections() != 0 {
				parts = append(parts, fmt.Sprintf("maxConnections %d", t.GetMaxConnections()))
			}
			if t.GetConnectTimeout() != nil {
				parts = append(parts, "connectTimeout "+dur(t.GetConnectTimeout()))
			}
		}
		if h := cp.GetHttp(); h != nil {
			for _, f := range []struct {
				name string
				v    int32
			}{{"http1MaxPendingRequests", h.GetHttp1MaxPendingRequests()}, {"http2MaxRequests", h.GetHttp2MaxRequests()},
				{"maxRequestsPerConnection", h.GetMaxRequestsPerConnection()}, {"maxRetries", h.GetMaxRetries()}} {
				if f.v != 0 {
					parts = append(parts, fmt.Sprintf("%s %d", f.name, f.v))
				}
			}
			if h.GetIdleTimeout() != nil {
				parts = append(parts, "idleTimeout "+dur(h.GetIdleTimeout()))
			}
		}
		if len(parts) == 0 {
			parts = append(parts, "defaults")
		}
		out = append(out, "connection pool: "+strings.Join(parts, ", "))
	}
	if od := tp.GetOutlierDetection(); od != nil {
		var parts []string
		if v := od.GetConsecutive_5XxErrors(); v != nil {
			parts = append(parts, fmt.Sprintf("consecutive5xxErrors %d", v.GetValue()))
		}
		if v := od.GetConsecutiveGatewayErrors(); v != nil {
			parts = append(parts, fmt.Sprintf("consecutiveGatewayErrors %d", v.GetValue()))
		}
		if od.GetInterval() != nil {
			parts = append(parts, "interval "+dur(od.GetInterval()))
		}
		if od.GetBaseEjectionTime() != nil {
			parts = append(parts, "baseEjectionTime "+dur(od.GetBaseEjectionTime()))
		}
		if od.GetMaxEjectionPercent() != 0 {
			parts = append(parts, fmt.Sprintf("maxEjectionPercent %d", od.GetMaxEjectionPercent()))
		}
		if len(parts) == 0 {
			parts = append(parts, "defaults")
		}
		out = append(out, "outlier detection: "+strings.Join(parts, ", "))
	}
	if t := tp.GetTls(); t != nil {
		out = append(out, "tls: "+tlsSettings(t))
	}
	return out
}

func loadBalancer(lb *networking.LoadBalancerSettings) string {
	var s string
	if ch := lb.GetConsistentHash(); ch != nil {
		switch {
		case ch.GetHttpHeaderName() != "":
			s = "consistent hash on header " + ch.GetHttpHeaderName()
		case ch.GetHttpCookie() != nil:
			s = "consistent hash on cookie " + ch.GetHttpCookie().GetName()
		case ch.GetUseSourceIp():
			s = "consistent hash on source IP"
		case ch.GetHttpQueryParameterName() != "":
			s = "consistent hash on query parameter " + ch.GetHttpQueryParameterName()
		default:
			s = "consistent hash"
		}
	} else {
		s = lb.GetSimple().String()
	}
	if lb.GetLocalityLbSetting() != nil {
		s += ", locality settings"
	}
	return s
}

func tlsSettings(t *networking.ClientTLSSettings) string {
	s := t.GetMode().String()
	if t.GetSni() != "" {
		s += ", sni " + t.GetSni()
	}
	if t.GetCredentialName() != "" {
		s += ", credential " + t.GetCredentialName()
	}
	return s
}

// authzRules summarises an AuthorizationPolicy's rules, one line each.
func authzRules(ap *security.AuthorizationPolicy) []string {
	if ap.GetAction() == security.AuthorizationPolicy_CUSTOM {
		prefix := "provider " + ap.GetProvider().GetName()
		if len(ap.GetRules()) == 0 {
			return []string{prefix + "; no rules: matches no request"}
		}
		out := []string{prefix}
		for _, r := range ap.GetRules() {
			out = append(out, authzRule(r))
		}
		return out
	}
	if len(ap.GetRules()) == 0 {
		if ap.GetAction() == security.AuthorizationPolicy_ALLOW {
			return []string{"no rules: allows nothing (every request not allowed by another policy is denied)"}
		}
		return []string{"no rules: matches no request"}
	}
	out := make([]string, len(ap.GetRules()))
	for i, r := range ap.GetRules() {
		out[i] = authzRule(r)
	}
	return out
}

func authzRule(r *security.Rule) string {
	var parts []string
	field := func(name string, pos, neg []string) {
		if len(pos) > 0 {
			parts = append(parts, name+" "+strings.Join(pos, ","))
		}
		if len(neg) > 0 {
			parts = append(parts, name+" not "+strings.Join(neg, ","))
		}
	}
	for _, f := range r.GetFrom() {
		s := f.GetSource()
		field("from principals", s.GetPrincipals(), s.GetNotPrincipals())
		field("from request principals", s.GetRequestPrincipals(), s.GetNotRequestPrincipals())
		field("from namespaces", s.GetNamespaces(), s.GetNotNamespaces())
		field("from ipBlocks", s.GetIpBlocks(), s.GetNotIpBlocks())
		field("from remoteIpBlocks", s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks())
	}
	for _, t := range r.GetTo() {
		o := t.GetOperation()
		field("to hosts", o.GetHosts(), o.GetNotHosts())
		field("to ports", o.GetPorts(), o.GetNotPorts())
		field("to methods", o.GetMethods(), o.GetNotMethods())
		field("to paths", o.GetPaths(), o.GetNotPaths())
	}
	for _, w := range r.GetWhen() {
		field("when "+w.GetKey(), w.GetValues(), w.GetNotValues())
	}
	if len(parts) == 0 {
		return "any request"
	}
	return strings.Join(parts, "; ")
}
