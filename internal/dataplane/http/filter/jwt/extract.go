package jwt

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

type locKind uint8

const (
	inHeader locKind = iota
	inParam
	inCookie
)

// location is one place a provider reads tokens from.
type location struct {
	kind   locKind
	name   string // canonical header key, parameter or cookie name
	prefix string
	// bearer marks the default Authorization location: the "Bearer "
	// scheme matches case-insensitively (RFC 6750).
	bearer bool
}

// defaultLocations are Envoy's when a provider configures none.
func defaultLocations() []location {
	return []location{
		{kind: inHeader, name: "Authorization", prefix: "Bearer ", bearer: true},
		{kind: inParam, name: "access_token"},
	}
}

// found is a token and where it was found.
type found struct {
	raw string
	loc location
}

// extract collects the tokens at locs, each distinct (token, location)
// once, in location order.
func extract(r *http.Request, query string, locs []location, out []found) []found {
	var params url.Values
	for _, l := range locs {
		switch l.kind {
		case inHeader:
			for _, v := range r.Header[l.name] {
				if t, ok := fromHeaderValue(v, l); ok {
					out = appendFound(out, found{raw: t, loc: l})
				}
			}
		case inParam:
			if query == "" {
				continue
			}
			if params == nil {
				params, _ = url.ParseQuery(query)
			}
			if vs := params[l.name]; len(vs) > 0 && vs[0] != "" {
				out = appendFound(out, found{raw: vs[0], loc: l})
			}
		case inCookie:
			if c, err := r.Cookie(l.name); err == nil && c.Value != "" {
				out = appendFound(out, found{raw: c.Value, loc: l})
			}
		}
	}
	return out
}

func appendFound(out []found, f found) []found {
	for _, o := range out {
		if o.raw == f.raw && o.loc == f.loc {
			return out
		}
	}
	return append(out, f)
}

// fromHeaderValue takes the token out of a header value: without a prefix
// the whole (trimmed) value, with one the JWT characters that follow the
// prefix's first occurrence (Envoy's extractor).
func fromHeaderValue(v string, l location) (string, bool) {
	if l.prefix == "" {
		v = strings.TrimSpace(v)
		return v, v != ""
	}
	var i int
	if l.bearer {
		i = indexFold(v, l.prefix)
	} else {
		i = strings.Index(v, l.prefix)
	}
	if i < 0 {
		return "", false
	}
	rest := v[i+len(l.prefix):]
	n := 0
	for n < len(rest) && isJWTChar(rest[n]) {
		n++
	}
	return rest[:n], n > 0
}

// isJWTChar reports whether c may appear in a compact JWT (base64url
// alphabet, padding, the dots).
func isJWTChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '=' || c == '+' || c == '/'
}

func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// remove deletes a verified token from the request (forward: false):
// header locations only, as Envoy does.
func remove(r *http.Request, f found) {
	if f.loc.kind == inHeader {
		r.Header.Del(f.loc.name)
	}
}

func canonicalHeader(name string) string { return textproto.CanonicalMIMEHeaderKey(name) }
