package pool

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// appendRequestHead appends req's request line and header fields to b,
// framed for a body of cl bytes (cl < 0: chunked). Every name and value is
// checked first: CR, LF, NUL or another control byte (HTAB aside) in a
// name, value, method, target or Host is an error and nothing is written,
// so header injection cannot split the request. Fields are written in
// the header map's order (the order of fields with different names
// carries no meaning, RFC 9110 section 5.3; sorting them cost the
// request path ~1,000 instructions); Host, Content-Length,
// Transfer-Encoding and Trailer in req.Header (in any case) are replaced
// by the request's own framing, and an empty User-Agent sends none.
func appendRequestHead(b []byte, req *http.Request, cl int64) ([]byte, error) {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !h1wire.ValidToken(method) {
		return b, fmt.Errorf("invalid method %q", method)
	}
	u := req.URL
	if u == nil {
		return b, errors.New("request without URL")
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return b, fmt.Errorf("invalid Host %q", host)
	}
	host = removeZone(host)

	b = append(b, method...)
	b = append(b, ' ')
	start := len(b)
	switch {
	case u.Opaque != "":
		b = append(b, u.RequestURI()...)
	default:
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		b = append(b, p...)
		if u.ForceQuery || u.RawQuery != "" {
			b = append(b, '?')
			b = append(b, u.RawQuery...)
		}
	}
	for _, c := range b[start:] {
		if c <= ' ' || c == 0x7f {
			return b[:0], fmt.Errorf("invalid request target %q", b[start:])
		}
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)

	for k, vs := range req.Header {
		if excludedField(k) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return b[:0], fmt.Errorf("invalid header field name %q", k)
		}
		if k == "User-Agent" {
			// As net/http: the first value only, none when empty.
			if len(vs) == 0 || vs[0] == "" {
				continue
			}
			vs = vs[:1]
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return b[:0], fmt.Errorf("invalid header field value for %q", k)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, h1wire.TrimOWS(v)...)
			b = append(b, "\r\n"...)
		}
	}
	if req.Close && !hasToken(req.Header["Connection"], "close") {
		b = append(b, "Connection: close\r\n"...)
	}
	switch {
	case cl > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, cl, 10)
		b = append(b, "\r\n"...)
	case cl < 0:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch:
		// Many servers expect a length for these methods (as net/http).
		b = append(b, "Content-Length: 0\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

// excludedField reports the request fields the framing owns.
func excludedField(k string) bool {
	switch len(k) {
	case 4:
		return strings.EqualFold(k, "Host")
	case 7:
		return strings.EqualFold(k, "Trailer")
	case 14:
		return strings.EqualFold(k, "Content-Length")
	case 17:
		return strings.EqualFold(k, "Transfer-Encoding")
	}
	return false
}

// removeZone removes an IPv6 zone from a Host ("[fe80::1%en0]:80"), which
// must not be sent (as net/http).
func removeZone(host string) string {
	if !strings.HasPrefix(host, "[") {
		return host
	}
	i := strings.LastIndex(host, "]")
	if i < 0 {
		return host
	}
	j := strings.LastIndex(host[:i], "%")
	if j < 0 {
		return host
	}
	return host[:j] + host[i:]
}

// hasToken reports whether the comma-separated field values vs hold
// token, in any case.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(h1wire.TrimOWS(t), token) {
				return true
			}
		}
	}
	return false
}
