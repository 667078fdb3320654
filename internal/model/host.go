package model

import "strings"

// DefaultDomainSuffix is the cluster DNS suffix used to complete short names.
const DefaultDomainSuffix = "cluster.local"

// ResolveShortName completes a short host name ("reviews") written in an
// object of namespace ns to "reviews.<ns>.svc.<suffix>", as Istio does for
// VirtualService and DestinationRule hosts. Names with a dot, wildcards,
// "*" and IP addresses (IPv6 has no dot) are returned unchanged.
func ResolveShortName(host, ns, suffix string) string {
	if host == "" || host == "*" || strings.Contains(host, ".") || strings.HasPrefix(host, "*") || strings.Contains(host, ":") {
		return host
	}
	return host + "." + ns + ".svc." + suffix
}

// HostMatches reports whether host (which may itself be a wildcard) is
// covered by pattern. "*" covers everything; "*.example.com" covers
// "a.example.com", "a.b.example.com" and "*.a.example.com".
func HostMatches(pattern, host string) bool {
	if pattern == "*" || pattern == host {
		return true
	}
	if strings.HasPrefix(pattern, "*") {
		suffix := pattern[1:] // ".example.com"
		if strings.HasPrefix(host, "*") {
			return strings.HasSuffix(host[1:], suffix)
		}
		return strings.HasSuffix(host, suffix)
	}
	return false
}

// HostsOverlap reports whether two host patterns can match a common name.
func HostsOverlap(a, b string) bool { return HostMatches(a, b) || HostMatches(b, a) }

// MoreSpecificHost orders hosts for lookups: exact names before wildcards,
// longer wildcards before shorter ones.
func MoreSpecificHost(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	if aw != bw {
		return !aw
	}
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a < b
}
