package validation

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
)

// Name syntaxes, as Istio defines them (Istio's DNS-1123 labels accept upper
// case letters; Kubernetes object names do not, but those are checked by
// package decode).
const dns1123LabelFmt = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"

var (
	dns1123LabelRe  = regexp.MustCompile("^" + dns1123LabelFmt + "$")
	wildcardLabelRe = regexp.MustCompile(`^(?:\*|(?:\*|\*-)?` + dns1123LabelFmt + ")$")
	// Kubernetes label keys: an optional DNS prefix and "/", then a name.
	labelKeyRe   = regexp.MustCompile(`^(?:(` + dns1123LabelFmt + `(?:\.` + dns1123LabelFmt + `)*)/)?((?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`)
	labelValueRe = regexp.MustCompile(`^(?:(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)
	// HTTP header names are RFC 7230 tokens.
	headerNameRe = regexp.MustCompile("^[!#$%&'*+\\-.^_`|~A-Za-z0-9]+$")
	// Header names Istio accepts where it generates headers itself.
	strictHeaderNameRe = regexp.MustCompile(`^[-A-Za-z0-9]+$`)
)

const (
	maxLabelLength  = 63
	maxDomainLength = 255
	// maxRegexLength is Istio's limit on regular expressions.
	maxRegexLength = 1024
)

func isDNS1123Label(s string) bool {
	return len(s) <= maxLabelLength && dns1123LabelRe.MatchString(s)
}

func isWildcardDNS1123Label(s string) bool {
	return len(s) <= maxLabelLength && wildcardLabelRe.MatchString(s)
}

// fqdnProblem checks a hostname without wildcards.
func fqdnProblem(host string) string {
	if p := domainLengthProblem(host); p != "" {
		return p
	}
	return dnsLabelsProblem(host, host)
}

// wildcardDomainProblem checks a hostname that may start with a wildcard
// label ("*", "*.example.com", "*-foo.example.com").
func wildcardDomainProblem(host string) string {
	if p := domainLengthProblem(host); p != "" {
		return p
	}
	first, rest, dotted := strings.Cut(host, ".")
	if !isWildcardDNS1123Label(first) {
		return fmt.Sprintf("invalid hostname %q: label %q is not a valid DNS-1123 label", host, first)
	}
	if dotted {
		return dnsLabelsProblem(host, rest)
	}
	return ""
}

func domainLengthProblem(host string) string {
	switch {
	case host == "":
		return "hostname must not be empty"
	case len(host) > maxDomainLength:
		return fmt.Sprintf("hostname is too long (%d characters, limit %d)", len(host), maxDomainLength)
	}
	return ""
}

// dnsLabelsProblem checks the labels of domain, a suffix of host. A final
// empty label ("istio.io.") is allowed; an all-numeric top-level label is not.
func dnsLabelsProblem(host, domain string) string {
	labels := strings.Split(domain, ".")
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return fmt.Sprintf("invalid hostname %q: the top-level domain %q cannot be all numeric", host, labels[len(labels)-1])
	}
	for i, l := range labels {
		if i == len(labels)-1 && l == "" {
			break
		}
		if !isDNS1123Label(l) {
			return fmt.Sprintf("invalid hostname %q: label %q is not a valid DNS-1123 label", host, l)
		}
	}
	return ""
}

// partialWildcardProblem rejects wildcards that are not a whole first label.
func partialWildcardProblem(host string) string {
	if strings.Contains(host, "*") && host != "*" && !strings.HasPrefix(host, "*.") {
		return fmt.Sprintf("partial wildcard %q is not allowed", host)
	}
	return ""
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

func ipProblem(s string) string {
	if !isIP(s) {
		return fmt.Sprintf("%q is not a valid IP address", s)
	}
	return ""
}

// subnetProblem accepts an IP address or a CIDR block.
func subnetProblem(s string) string {
	if strings.Count(s, "/") == 1 {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Sprintf("%q is not a valid CIDR block", s)
		}
		return ""
	}
	return ipProblem(s)
}

const unixPrefix = "unix://"

// unixAddressProblem checks the path of a unix domain socket: absolute, not
// a directory, or an abstract socket name starting with "@".
func unixAddressProblem(addr string) string {
	switch {
	case addr == "":
		return "unix socket path must not be empty"
	case strings.HasPrefix(addr, "@"):
		return ""
	case !path.IsAbs(addr) || strings.HasSuffix(addr, "/"):
		return fmt.Sprintf("%q is not an absolute path to a file", addr)
	}
	return ""
}

func portProblem(port uint32) string {
	if port < 1 || port > 65535 {
		return fmt.Sprintf("port number %d must be in the range 1..65535", port)
	}
	return ""
}

func portNameProblem(name string) string {
	if !isDNS1123Label(name) {
		return fmt.Sprintf("invalid port name %q: must be a DNS-1123 label", name)
	}
	return ""
}

// Protocols are the port protocols Istio understands, keyed by lower case.
type protocol string

const (
	protoUnknown   protocol = ""
	protoTCP       protocol = "TCP"
	protoUDP       protocol = "UDP"
	protoGRPC      protocol = "GRPC"
	protoGRPCWeb   protocol = "GRPC-Web"
	protoHTTP      protocol = "HTTP"
	protoHTTPProxy protocol = "HTTP_PROXY"
	protoHTTP2     protocol = "HTTP2"
	protoHTTPS     protocol = "HTTPS"
	protoTLS       protocol = "TLS"
	protoMongo     protocol = "Mongo"
	protoRedis     protocol = "Redis"
	protoMySQL     protocol = "MySQL"
)

var protocols = map[string]protocol{
	"tcp": protoTCP, "udp": protoUDP, "grpc": protoGRPC, "grpc-web": protoGRPCWeb,
	"http": protoHTTP, "http_proxy": protoHTTPProxy, "http2": protoHTTP2, "https": protoHTTPS,
	"tls": protoTLS, "mongo": protoMongo, "redis": protoRedis, "mysql": protoMySQL,
}

func parseProtocol(s string) protocol { return protocols[strings.ToLower(s)] }

func (p protocol) isHTTP() bool {
	switch p {
	case protoHTTP, protoHTTP2, protoHTTPProxy, protoGRPC, protoGRPCWeb:
		return true
	}
	return false
}

func (p protocol) isTLS() bool { return p == protoHTTPS || p == protoTLS }

func (p protocol) isTCP() bool {
	switch p {
	case protoTCP, protoHTTPS, protoTLS, protoMongo, protoRedis, protoMySQL:
		return true
	}
	return false
}

// protocolProblem checks a protocol name; the empty name (protocol
// sniffing) is allowed.
func protocolProblem(s string) string {
	if s != "" && parseProtocol(s) == protoUnknown {
		return fmt.Sprintf("unsupported protocol %q (supported: HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, HTTP_PROXY, TCP, TLS, UDP, MONGO, REDIS, MYSQL)", s)
	}
	return ""
}

// durationProblem applies Istio's rule for durations: at least 1ms and a
// whole number of milliseconds.
func durationProblem(d *durationpb.Duration) string {
	if d == nil {
		return "required"
	}
	if err := d.CheckValid(); err != nil {
		return "invalid duration"
	}
	v := d.AsDuration()
	if v < time.Millisecond {
		return fmt.Sprintf("duration %v must be at least 1ms", v)
	}
	if v%time.Millisecond != 0 {
		return fmt.Sprintf("duration %v must be a whole number of milliseconds", v)
	}
	return ""
}

// checkDuration checks an optional duration field.
func checkDuration(r *report, p fieldPath, d *durationpb.Duration) {
	if d != nil {
		r.check(p, durationProblem(d))
	}
}

// labelKeyProblem checks a Kubernetes label or annotation key.
func labelKeyProblem(k string) string {
	m := labelKeyRe.FindStringSubmatch(k)
	switch {
	case m == nil:
		return fmt.Sprintf("invalid key %q: must be a name of alphanumerics, '-', '_' or '.' with an optional DNS prefix and '/'", k)
	case len(m[1]) > 253:
		return fmt.Sprintf("invalid key %q: the prefix is longer than 253 characters", k)
	case len(m[2]) > maxLabelLength:
		return fmt.Sprintf("invalid key %q: the name is longer than 63 characters", k)
	}
	return ""
}

// validateLabels checks label keys and values. limitValues applies the
// Kubernetes limit of 63 characters to values, as for object metadata and
// selectors.
func validateLabels(r *report, p fieldPath, labels map[string]string, limitValues bool) {
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		r.check(p.key(k), labelKeyProblem(k))
		switch {
		case !labelValueRe.MatchString(v):
			r.errorf(p.key(k), "invalid label value %q: must be empty or alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric", v)
		case limitValues && len(v) > maxLabelLength:
			r.errorf(p.key(k), "invalid label value %q: longer than 63 characters", v)
		}
	}
}

// validateSelectorLabels checks workload selector labels: no empty keys, no
// wildcards, and Kubernetes label syntax.
func validateSelectorLabels(r *report, p fieldPath, labels map[string]string) {
	rest := make(map[string]string, len(labels))
	for _, k := range sortedKeys(labels) {
		v := labels[k]
		switch {
		case k == "":
			r.errorf(p.key(k), "empty key is not supported in a selector")
		case strings.Contains(k, "*") || strings.Contains(v, "*"):
			r.errorf(p.key(k), "wildcard is not supported in a selector: %q", k+"="+v)
		default:
			rest[k] = v
		}
	}
	validateLabels(r, p, rest, true)
}

// headerNameProblem checks an HTTP header name.
func headerNameProblem(name string) string {
	switch {
	case name == "":
		return "header name must not be empty"
	case !headerNameRe.MatchString(name):
		return fmt.Sprintf("invalid header name %q", name)
	}
	return ""
}

// strictHeaderNameProblem checks a header name that Istio writes itself.
func strictHeaderNameProblem(name string) string {
	switch {
	case name == "":
		return "header name must not be empty"
	case !strictHeaderNameRe.MatchString(name):
		return fmt.Sprintf("invalid header name %q: use letters, digits and '-'", name)
	}
	return ""
}

// headerValueProblem checks a header value Envoy will format: no control
// characters, and '%' only as "%%" or around a %VARIABLE% or
// %VARIABLE(args)% expression.
func headerValueProblem(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Sprintf("invalid header value %q: control characters are not allowed", v)
		}
	}
	unterminated := fmt.Sprintf("invalid header value %q: unterminated %%VARIABLE%% expression (write %%%% for a literal %%)", v)
	for i := 0; i < len(v); {
		if v[i] != '%' {
			i++
			continue
		}
		if i+1 < len(v) && v[i+1] == '%' {
			i += 2
			continue
		}
		j := i + 1
		for j < len(v) && v[j] != '%' && v[j] != '(' {
			j++
		}
		if j >= len(v) {
			return unterminated
		}
		if v[j] == '(' {
			k, quoted := j+1, false
			for ; k < len(v); k++ {
				c := v[k]
				if quoted {
					if c == '\\' {
						k++
					} else if c == '"' {
						quoted = false
					}
					continue
				}
				if c == '"' {
					quoted = true
				} else if c == ')' {
					break
				}
			}
			for k++; k < len(v) && v[k] == ' '; k++ {
			}
			if k >= len(v) || v[k] != '%' {
				return unterminated
			}
			j = k
		}
		i = j + 1
	}
	return ""
}

// regexProblem applies Istio's rules to a regular expression: not empty, at
// most 1024 bytes, valid RE2 syntax.
func regexProblem(re string) string {
	switch {
	case re == "":
		return "regex must not be empty"
	case len(re) > maxRegexLength:
		return fmt.Sprintf("regex is too long (%d bytes, limit %d)", len(re), maxRegexLength)
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Sprintf("invalid RE2 regex: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return ""
}

// percentageProblem checks a fractional percentage: 0, or 0.0001 to 100.
func percentageProblem(p *networking.Percent) string {
	if p == nil {
		return ""
	}
	if v := p.GetValue(); v < 0 || v > 100 || (v > 0 && v < 0.0001) {
		return fmt.Sprintf("percentage %v must be 0 or between 0.0001 and 100", v)
	}
	return ""
}

func percentProblem(v int64) string {
	if v < 0 || v > 100 {
		return fmt.Sprintf("percentage %d must be between 0 and 100", v)
	}
	return ""
}

// Visibility values of exportTo.
const (
	exportPrivate = "."
	exportPublic  = "*"
	exportNone    = "~"
)

// validateExportTo checks an exportTo list. "~" (visible to no one) is only
// allowed on ServiceEntries; a DestinationRule with a workload selector may
// only be exported to its own namespace.
func validateExportTo(r *report, p fieldPath, namespace string, exportTo []string, serviceEntry, drWithSelector bool) {
	if len(exportTo) == 0 {
		return
	}
	seen := make(map[string]bool)
	for i, e := range exportTo {
		ep := p.index(i)
		key := e
		if e == exportPrivate {
			key = namespace
		}
		if seen[key] {
			if key != e {
				r.errorf(ep, "duplicate entry: \".\" and the namespace %q both name the current namespace", namespace)
			} else {
				r.errorf(ep, "duplicate entry %q", e)
			}
			continue
		}
		switch {
		case e == exportPrivate || e == exportPublic:
		case e == exportNone:
			if !serviceEntry {
				r.errorf(ep, "\"~\" (visible to no one) is only allowed on ServiceEntry")
				continue
			}
		case !isDNS1123Label(e):
			r.errorf(ep, "invalid entry %q: want \".\", \"*\" or a namespace name", e)
			continue
		}
		seen[key] = true
	}
	if drWithSelector && len(seen) > 0 {
		if !seen[namespace] {
			r.errorf(p, "a destination rule with a workload selector cannot be exported beyond its own namespace")
		} else if len(seen) > 1 {
			r.errorf(p, "a destination rule with a workload selector cannot have several exportTo entries")
		}
	}
	if seen[exportPublic] && len(exportTo) > 1 {
		r.errorf(p, "\"*\" (public) cannot be combined with other entries")
	}
	if seen[exportNone] && len(exportTo) > 1 {
		r.errorf(p, "\"~\" (visible to no one) cannot be combined with other entries")
	}
}

// hostMatches reports whether two hosts, either possibly a wildcard, have
// names in common (Istio's host.Name.Matches).
func hostMatches(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		if len(a) < len(b) {
			return strings.HasSuffix(b[1:], a[1:])
		}
		return strings.HasSuffix(a[1:], b[1:])
	case aw:
		return strings.HasSuffix(b, a[1:])
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// hostSubsetOf reports whether every name a matches is matched by b
// (Istio's host.Name.SubsetOf).
func hostSubsetOf(a, b string) bool {
	aw, bw := strings.HasPrefix(a, "*"), strings.HasPrefix(b, "*")
	switch {
	case aw && bw:
		return len(a) >= len(b) && strings.HasSuffix(a[1:], b[1:])
	case aw:
		return false
	case bw:
		return strings.HasSuffix(a, b[1:])
	}
	return a == b
}

// namespacedHostProblems checks a "namespace/host" entry of a Sidecar
// egress listener or a Gateway server. Gateways also accept a bare host and
// an IP address.
func namespacedHostProblems(host string, gateway bool) []string {
	ns, name, ok := strings.Cut(host, "/")
	if !ok {
		if gateway {
			return hostPartProblems(host, true)
		}
		return []string{fmt.Sprintf("host %q must be of the form namespace/dnsName", host)}
	}
	var out []string
	if ns == "" || name == "" {
		return []string{fmt.Sprintf("host %q: namespace and dnsName must not be empty", host)}
	}
	switch {
	case ns == "*" || ns == ".":
	case ns == "~" && !gateway:
	case !isDNS1123Label(ns):
		out = append(out, fmt.Sprintf("host %q: invalid namespace %q", host, ns))
	}
	return append(out, hostPartProblems(name, gateway)...)
}

func hostPartProblems(name string, gateway bool) []string {
	var out []string
	if name != "*" && !strings.Contains(name, ".") {
		out = append(out, fmt.Sprintf("host %q: short names (without a domain) are not allowed; use the fully qualified name", name))
	}
	if p := wildcardDomainProblem(name); p != "" && !(gateway && isIP(name)) {
		out = append(out, p)
	}
	if p := partialWildcardProblem(name); p != "" {
		out = append(out, p)
	}
	return out
}
