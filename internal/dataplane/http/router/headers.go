package router

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// hopHeaders are connection-specific response headers never copied
// downstream (RFC 9110 7.6.1).
var hopHeaders = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer", "Te",
}

// copyResponseHeader copies an upstream response's headers to dst without
// the hop-by-hop ones and those its Connection header names, and returns
// vals extended. The value slices in dst are taken from vals (appended
// to: room for src's values costs no allocation), never shared with src:
// the upstream may reuse src's once the response is released, while
// dst's are read until the request's record has been observed. The
// strings themselves are shared.
func copyResponseHeader(dst, src http.Header, vals []string) []string {
	for k, vs := range src {
		if len(vs) == 0 {
			dst[k] = vs
			continue
		}
		i := len(vals)
		vals = append(vals, vs...)
		dst[k] = vals[i:len(vals):len(vals)]
	}
	for _, v := range src["Connection"] {
		for v != "" {
			var tok string
			tok, v, _ = strings.Cut(v, ",")
			if tok = textproto.TrimString(tok); tok != "" {
				dst.Del(tok)
			}
		}
	}
	for _, k := range hopHeaders {
		delete(dst, k)
	}
	if _, ok := dst["Content-Type"]; !ok {
		// A nil entry stops net/http from sniffing one.
		dst["Content-Type"] = nil
	}
	return vals
}

// upstreamURL builds the request URL for a normalised path (with query):
// Path and RawPath are set so that net/http sends the path byte for byte
// (RequestURI), escaped slashes included.
func upstreamURL(authority, path string) *url.URL {
	u := new(url.URL)
	setUpstreamURL(u, authority, path)
	return u
}

// setUpstreamURL sets u to upstreamURL(authority, path).
func setUpstreamURL(u *url.URL, authority, path string) {
	*u = url.URL{Scheme: "http", Host: authority}
	raw, query, hasQuery := strings.Cut(path, "?")
	if hasQuery {
		u.RawQuery = query
		u.ForceQuery = query == ""
	}
	if raw == "" {
		raw = "/"
	}
	if plainPath(raw) {
		// Most paths: EscapedPath gives Path back as it is, with no
		// RawPath to unescape and compare per request.
		u.Path = raw
		return
	}
	raw = escapeForURL(raw)
	p, err := url.PathUnescape(raw)
	if err != nil {
		p = raw
	}
	u.Path, u.RawPath = p, raw
}

// plainPath reports whether url.URL.EscapedPath writes p, as a Path, as
// it is: no '%' and no byte that net/url escapes in a path.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		switch c {
		case '-', '.', '_', '~', '$', '&', '+', ',', ';', '=', ':', '@', '/':
			continue
		}
		return false
	}
	return true
}

// escapeForURL percent-encodes the bytes net/url would not keep as they
// are in an escaped path, and a '%' that does not start an escape, so that
// URL.EscapedPath returns the path unchanged.
func escapeForURL(p string) string {
	ok := true
	for i := 0; i < len(p); i++ {
		if !pathByteOK(p, i) {
			ok = false
			break
		}
	}
	if ok {
		return p
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if pathByteOK(p, i) {
			b.WriteByte(p[i])
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[p[i]>>4])
		b.WriteByte(hex[p[i]&0xf])
	}
	return b.String()
}

func pathByteOK(p string, i int) bool {
	c := p[i]
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	case c == '%':
		return i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2])
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '/', '[', ']':
		return true
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
