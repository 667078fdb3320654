package route

import (
	"net/netip"
	"strings"
)

// Headers gives read access to a request's regular (non-pseudo) headers.
// Names are lower case, as HTTP/2 carries them and as Envoy stores them.
// Values returns every value of the header in order of arrival, or nil
// when the header is absent; the caller only reads the slice.
type Headers interface {
	Values(name string) []string
}

// HeaderMutator is a header map the route may edit (request headers on the
// way upstream, response headers on the way back).
type HeaderMutator interface {
	Headers
	// Set replaces every value of name with value.
	Set(name, value string)
	// Add appends a value to name.
	Add(name, value string)
	// Del removes every value of name.
	Del(name string)
}

// HeaderMap is a simple Headers and HeaderMutator keyed by lower-case
// name. The HTTP engine may use its own type.
type HeaderMap map[string][]string

// Values implements Headers.
func (m HeaderMap) Values(name string) []string { return m[name] }

// Set implements HeaderMutator.
func (m HeaderMap) Set(name, value string) { m[name] = []string{value} }

// Add implements HeaderMutator.
func (m HeaderMap) Add(name, value string) { m[name] = append(m[name], value) }

// Del implements HeaderMutator.
func (m HeaderMap) Del(name string) { delete(m, name) }

// Get returns the first value of name, or "".
func (m HeaderMap) Get(name string) string {
	if v := m[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Request is what routing reads from a request. The HTTP engine fills it
// once per request, after the connection manager has normalised the path
// and authority (see doc.go), and passes a pointer: matching does not
// retain it and, on the common path, does not allocate.
type Request struct {
	// Pseudo-headers. Scheme is required: as in Envoy, a request without
	// x-forwarded-proto or scheme gets no route. Path is :path as sent,
	// query included. Matching on the header names ":method",
	// ":authority" (or "host"), ":scheme" and ":path" reads these fields.
	Method    string
	Scheme    string
	Authority string
	Path      string

	// Headers holds the regular headers; nil means none.
	Headers Headers

	// Source and Local are the downstream connection's remote and local
	// addresses (source-IP hashing, generated hash cookies).
	Source netip.AddrPort
	Local  netip.AddrPort

	// PeerCertPresented and PeerCertValidated describe the downstream TLS
	// session for RouteMatch.tls_context.
	PeerCertPresented bool
	PeerCertValidated bool

	// Random is the request's random value, drawn once per request from the
	// engine's (injectable) random source, as Envoy's connection manager
	// does. It decides runtime_fraction matches and is the default input of
	// WeightedClusters.Pick and of CORS filter_enabled.
	Random uint64

	// FilterState looks up a hashable filter-state object for hash_policy
	// filter_state; nil means none.
	FilterState func(key string) (uint64, bool)
}

// Header returns the value of the header name (lower case) the way Envoy
// matches headers: absent is (""; false), several values are joined with
// ",". Pseudo-headers come from the Request fields; an empty field is
// absent. Joining several values allocates; a single value does not.
func (r *Request) Header(name string) (string, bool) {
	if len(name) > 0 && (name[0] == ':' || name == "host") {
		var v string
		switch name {
		case ":authority", "host":
			v = r.Authority
		case ":method":
			v = r.Method
		case ":path":
			v = r.Path
		case ":scheme":
			v = r.Scheme
		default:
			return r.regularHeader(name)
		}
		return v, v != ""
	}
	return r.regularHeader(name)
}

func (r *Request) regularHeader(name string) (string, bool) {
	if r.Headers == nil {
		return "", false
	}
	vs := r.Headers.Values(name)
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

// headerValues returns every value of name without joining (pseudo-headers
// give one value).
func (r *Request) headerValues(name string, one *[1]string) []string {
	if len(name) > 0 && (name[0] == ':' || name == "host") {
		if v, ok := r.Header(name); ok {
			one[0] = v
			return one[:]
		}
		return nil
	}
	if r.Headers == nil {
		return nil
	}
	return r.Headers.Values(name)
}

// forwardedProto is x-forwarded-proto as Envoy reads it for redirects and
// require_tls (the connection manager sets it), else Scheme.
func (r *Request) forwardedProto() string {
	if r.Headers != nil {
		if vs := r.Headers.Values("x-forwarded-proto"); len(vs) > 0 && vs[0] != "" {
			return vs[0]
		}
	}
	return r.Scheme
}

// Cookie returns the value of the cookie name from the Cookie headers,
// parsed as Envoy's Http::Utility::parseCookieValue: pairs split on ';',
// leading spaces skipped, pairs without '=' ignored, one pair of
// surrounding double quotes removed; the first match wins.
func (r *Request) Cookie(name string) (string, bool) {
	if r.Headers == nil {
		return "", false
	}
	for _, h := range r.Headers.Values("cookie") {
		for h != "" {
			var pair string
			pair, h, _ = strings.Cut(h, ";")
			pair = strings.TrimLeft(pair, " ")
			k, v, ok := strings.Cut(pair, "=")
			if !ok || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// QueryParam returns the first value of the query parameter name, as
// Envoy's QueryParamsMulti::parseQueryString and getFirstValue: the query
// is everything after the first '?', split on '&', not percent-decoded; a
// parameter without '=' has the value "".
func (r *Request) QueryParam(name string) (string, bool) {
	return queryParam(r.Path, name)
}

func queryParam(path, name string) (string, bool) {
	i := strings.IndexByte(path, '?')
	if i < 0 {
		return "", false
	}
	q := path[i+1:]
	for q != "" {
		var p string
		p, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(p, "=")
		if k == name {
			return v, true
		}
	}
	return "", false
}

// pathOnly is the path without query and fragment (Envoy's
// PathUtil::removeQueryAndFragment).
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// isGRPC is Envoy's Grpc::Common::isGrpcRequestHeaders: a path is present
// and content-type is application/grpc, optionally followed by '+' or ';'.
func (r *Request) isGRPC() bool {
	if r.Path == "" {
		return false
	}
	ct, ok := r.regularHeaderFirst("content-type")
	if !ok || !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	return len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';'
}

func (r *Request) regularHeaderFirst(name string) (string, bool) {
	if r.Headers == nil {
		return "", false
	}
	if vs := r.Headers.Values(name); len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}
