package route

import (
	"fmt"
	"slices"
	"strings"

	"github.com/trellismesh/trellis/internal/dataplane/strmatch"
)

// TLSRequirement is VirtualHost.require_tls.
type TLSRequirement uint8

// TLS requirements.
const (
	TLSNone         TLSRequirement = iota
	TLSExternalOnly                // redirect external plaintext requests to https
	TLSAll                         // redirect every plaintext request to https
)

// VirtualHost is a compiled virtual host. It is immutable.
type VirtualHost struct {
	Name    string
	Index   int // position in RouteConfiguration.virtual_hosts
	Domains []string
	Routes  []*Route

	RequireTLS                    TLSRequirement
	IncludeRequestAttemptCount    bool
	IncludeAttemptCountInResponse bool
	// PerRequestBufferLimit is per_request_buffer_limit_bytes; a route's
	// own value wins (Route.BufferLimit).
	PerRequestBufferLimit OptionalUint32

	table       *Table
	retry       *RetryPolicy
	mirrors     []Mirror
	reqHeaders  *HeaderOps
	respHeaders *HeaderOps
	filters     filterConfigs
	cors        *CORS // legacy VirtualHost.cors
	sslRedirect *Route
}

// Table is a compiled RouteConfiguration: immutable, safe for concurrent
// use, swapped whole when RDS sends a new version.
type Table struct {
	Name         string
	VirtualHosts []*VirtualHost
	// MaxDirectResponseBodySize is max_direct_response_body_size_bytes
	// (Envoy's default 4096).
	MaxDirectResponseBodySize uint32
	// InternalOnlyHeaders are stripped from external requests by the
	// connection manager.
	InternalOnlyHeaders []string

	ignorePort  bool
	vhostHeader string
	exact       map[string]*VirtualHost
	suffix      map[string]*VirtualHost // "*foo.com" stored as "foo.com"
	suffixLens  []int                   // distinct suffix lengths, longest first
	prefix      map[string]*VirtualHost // "foo.*" stored as "foo."
	prefixLens  []int
	def         *VirtualHost // domain "*"

	mostSpecificHeaderMutationsWins bool
	reqHeaders                      *HeaderOps
	respHeaders                     *HeaderOps
	mirrors                         []Mirror
	filters                         filterConfigs

	// retries shares equal compiled retry policies while the table is
	// compiled (sharedRetry); nil afterwards.
	retries map[string]*RetryPolicy
}

// addDomains indexes vh's domains as Envoy's RouteMatcher: lower-cased;
// "*" is the default virtual host (one allowed); a leading '*' makes a
// suffix wildcard, a trailing '*' a prefix wildcard; duplicates are errors.
func (t *Table) addDomains(vh *VirtualHost) error {
	for _, d := range vh.Domains {
		d = strings.ToLower(d)
		var dup bool
		switch {
		case d == "*":
			if t.def != nil {
				return fmt.Errorf("only a single wildcard domain is permitted in route %s", t.Name)
			}
			t.def = vh
		case d != "" && d[0] == '*':
			dup = put(t.suffix, d[1:], vh)
			if !slices.Contains(t.suffixLens, len(d)-1) {
				t.suffixLens = append(t.suffixLens, len(d)-1)
			}
		case d != "" && d[len(d)-1] == '*':
			dup = put(t.prefix, d[:len(d)-1], vh)
			if !slices.Contains(t.prefixLens, len(d)-1) {
				t.prefixLens = append(t.prefixLens, len(d)-1)
			}
		default:
			dup = put(t.exact, d, vh)
		}
		if dup {
			return fmt.Errorf("only unique values for domains are permitted: duplicate entry of domain %s in route %s", d, t.Name)
		}
	}
	return nil
}

func put(m map[string]*VirtualHost, k string, vh *VirtualHost) (dup bool) {
	if _, ok := m[k]; ok {
		return true
	}
	m[k] = vh
	return false
}

// sortLens orders the wildcard lengths longest first.
func (t *Table) sortLens() {
	desc := func(a, b int) int { return b - a }
	slices.SortFunc(t.suffixLens, desc)
	slices.SortFunc(t.prefixLens, desc)
}

// VirtualHost selects the virtual host for req as Envoy's
// RouteMatcher::findVirtualHost: with only a "*" host it is returned at
// once; otherwise the authority (or vhost_header) is required, its port is
// dropped when ignore_port_in_host_matching, it is lower-cased, and then
// exact domain > longest suffix wildcard > longest prefix wildcard > "*".
// A wildcard matches at least one character ("*.foo.com" does not match
// ".foo.com"). Nil means no virtual host (404).
func (t *Table) VirtualHost(req *Request) *VirtualHost {
	if len(t.exact) == 0 && len(t.suffix) == 0 && len(t.prefix) == 0 {
		return t.def
	}
	host := req.Authority
	if t.vhostHeader != "" {
		var ok bool
		if host, ok = req.Header(t.vhostHeader); !ok {
			return nil
		}
	} else if host == "" {
		return nil
	}
	if t.ignorePort {
		if i := portStart(host); i >= 0 {
			host = host[:i]
		}
	}
	var stack [256]byte
	var b []byte
	if len(host) <= len(stack) {
		b = stack[:len(host)]
	} else {
		b = make([]byte, len(host))
	}
	for i := 0; i < len(host); i++ {
		b[i] = strmatch.Lower(host[i])
	}
	if vh, ok := t.exact[string(b)]; ok {
		return vh
	}
	for _, n := range t.suffixLens {
		if n >= len(b) {
			continue
		}
		if vh, ok := t.suffix[string(b[len(b)-n:])]; ok {
			return vh
		}
	}
	for _, n := range t.prefixLens {
		if n >= len(b) {
			continue
		}
		if vh, ok := t.prefix[string(b[:n])]; ok {
			return vh
		}
	}
	return t.def
}

// portStart is Envoy's HeaderUtility::getPortStart: the index of the ':'
// before the port, or -1 (no colon, or the last colon is inside an IPv6
// literal "[...]").
func portStart(host string) int {
	i := strings.LastIndexByte(host, ':')
	if i < 0 {
		return -1
	}
	if j := strings.LastIndexByte(host, ']'); j >= 0 && j > i {
		return -1
	}
	return i
}

// Match routes req: virtual host, then its routes in order; the first
// route whose match holds wins. Nil means no route (Envoy answers 404).
func (t *Table) Match(req *Request) *Route {
	vh := t.VirtualHost(req)
	if vh == nil {
		return nil
	}
	return vh.Match(req)
}

// Match picks the route within the virtual host, as Envoy's
// VirtualHostImpl::getRouteFromEntries: a request without a scheme (no
// x-forwarded-proto and no Scheme) gets no route; a virtual host that
// requires TLS answers plaintext requests with a 301 to https; otherwise
// the first matching route wins.
func (vh *VirtualHost) Match(req *Request) *Route {
	scheme := req.forwardedProto()
	if scheme == "" {
		return nil
	}
	if vh.RequireTLS != TLSNone && scheme != "https" && (vh.RequireTLS == TLSAll || !isInternal(req)) {
		return vh.sslRedirect
	}
	for _, r := range vh.Routes {
		if r.match.match(req) {
			return r
		}
	}
	return nil
}

// isInternal is Envoy's isEnvoyInternalRequest: x-envoy-internal: true.
func isInternal(req *Request) bool {
	v, ok := req.regularHeaderFirst("x-envoy-internal")
	return ok && v == "true"
}
