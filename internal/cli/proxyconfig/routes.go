package proxyconfig

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// RouteTable lists one row per route of every virtual host of every route
// configuration (configurations and hosts by name, routes in match
// order): NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE, as istioctl
// proxy-config routes prints them. f.Name narrows it to one configuration.
func RouteTable(d *Dump, f Filter) Table {
	t := Table{Header: []string{"NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"}}
	rcs := slices.Clone(d.Routes)
	slices.SortStableFunc(rcs, func(a, b *routev3.RouteConfiguration) int { return strings.Compare(a.GetName(), b.GetName()) })
	for _, rc := range rcs {
		if f.Name != "" && rc.GetName() != f.Name {
			continue
		}
		vhs := slices.Clone(rc.GetVirtualHosts())
		slices.SortStableFunc(vhs, func(a, b *routev3.VirtualHost) int { return strings.Compare(a.GetName(), b.GetName()) })
		for _, vh := range vhs {
			domains := describeDomains(vh.GetDomains())
			for _, r := range vh.GetRoutes() {
				t.Rows = append(t.Rows, []string{rc.GetName(), vh.GetName(), domains, routeMatch(r.GetMatch()), configRef(r.GetMetadata())})
			}
		}
	}
	return t
}

// describeDomains keeps a virtual host's domains short: those without a
// port, shortest first, at most two, then "+ N more...".
func describeDomains(domains []string) string {
	if len(domains) <= 1 {
		return strings.Join(domains, "")
	}
	var short []string
	for _, d := range domains {
		if !strings.Contains(d, ":") || strings.HasPrefix(d, "[") && strings.HasSuffix(d, "]") {
			short = append(short, d)
		}
	}
	if len(short) == 0 {
		short = slices.Clone(domains)
	}
	slices.SortStableFunc(short, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
	const most = 2
	if len(short) > most {
		return fmt.Sprintf("%s + %d more...", strings.Join(short[:most], ", "), len(short)-most)
	}
	return strings.Join(short, ", ")
}

// routeMatch describes a route's match: its path (prefixes end in "*"),
// then its header and query conditions in parentheses.
func routeMatch(m *routev3.RouteMatch) string {
	var path string
	switch {
	case m.GetPrefix() != "":
		path = m.GetPrefix() + "*"
		if m.GetPrefix() == "/" {
			path = "/*"
		}
	case m.GetPath() != "":
		path = m.GetPath()
	case m.GetSafeRegex() != nil:
		path = "regex " + m.GetSafeRegex().GetRegex()
	case m.GetPathSeparatedPrefix() != "":
		path = m.GetPathSeparatedPrefix() + "/*"
	case m.GetConnectMatcher() != nil:
		path = "CONNECT"
	default:
		path = "/*"
	}
	var conds []string
	for _, h := range m.GetHeaders() {
		conds = append(conds, headerCondition(h))
	}
	for _, q := range m.GetQueryParameters() {
		conds = append(conds, "?"+q.GetName()+stringMatch(q.GetStringMatch()))
	}
	if len(conds) == 0 {
		return path
	}
	return path + " (" + strings.Join(conds, ", ") + ")"
}

func headerCondition(h *routev3.HeaderMatcher) string {
	neg := ""
	if h.GetInvertMatch() {
		neg = "!"
	}
	switch {
	case h.GetStringMatch() != nil:
		return neg + h.GetName() + stringMatch(h.GetStringMatch())
	case h.GetPresentMatch():
		return neg + h.GetName() + " present"
	case h.GetExactMatch() != "":
		return neg + h.GetName() + "=" + h.GetExactMatch()
	case h.GetPrefixMatch() != "":
		return neg + h.GetName() + "=" + h.GetPrefixMatch() + "*"
	case h.GetSafeRegexMatch() != nil:
		return neg + h.GetName() + "~" + h.GetSafeRegexMatch().GetRegex()
	}
	return neg + h.GetName()
}

func stringMatch(m *matcherv3.StringMatcher) string {
	switch {
	case m.GetExact() != "":
		return "=" + m.GetExact()
	case m.GetPrefix() != "":
		return "=" + m.GetPrefix() + "*"
	case m.GetSuffix() != "":
		return "=*" + m.GetSuffix()
	case m.GetContains() != "":
		return "=*" + m.GetContains() + "*"
	case m.GetSafeRegex().GetRegex() != "":
		return "~" + m.GetSafeRegex().GetRegex()
	}
	return ""
}

// configRef names the Istio config recorded in a resource's istio
// metadata ("config": /apis/<group>/<version>/namespaces/<ns>/<kind>/<name>)
// as name.namespace; "" when there is none.
func configRef(md *corev3.Metadata) string {
	path := md.GetFilterMetadata()["istio"].GetFields()["config"].GetStringValue()
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// apis, group, version, namespaces, ns, kind, name
	if len(parts) != 7 || parts[0] != "apis" || parts[3] != "namespaces" {
		return path
	}
	return parts[6] + "." + parts[4]
}
