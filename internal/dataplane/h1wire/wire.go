package h1wire

import (
	"bytes"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// CutLine splits the first line off s, without its LF and a CR just
// before it. A CR elsewhere stays in the line for the caller's checks to
// reject.
func CutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		line, rest = s, ""
	} else {
		line, rest = s[:i], s[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// TrimOWS trims optional whitespace (SP, HTAB) on both ends of s.
func TrimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// ValidToken reports whether s is a non-empty RFC 9110 token (a method,
// a header name).
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// ParseContentLength parses a Content-Length value: 1 to 18 decimal
// digits (always an int64), nothing else.
func ParseContentLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, true
}

// ParseChunkSize parses a chunk-size line (without its line ending) as
// net/http does: the extension after ';' is dropped, trailing whitespace
// trimmed, and 1 to 15 hexadecimal digits remain (a size that fits an
// int64 with room to add to it).
func ParseChunkSize(line []byte) (int64, bool) {
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimRight(line, " \t")
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int64(d)
	}
	return n, true
}

// CanonicalKey is textproto.CanonicalMIMEHeaderKey for a valid header
// name, without allocating for names that are already canonical or are
// common (lower-case names, as HTTP/2-minded peers send, included).
func CanonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return canonicalSlow(name)
		}
		upper = c == '-'
	}
	return name
}

func canonicalSlow(name string) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return textproto.CanonicalMIMEHeaderKey(name)
	}
	b := buf[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonNames[string(b)]; ok {
		return k
	}
	return string(b)
}

// commonNames interns the canonical form of frequent request and
// response header names. It is built once and never modified.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Access-Control-Allow-Origin", "Age", "Alt-Svc", "Authorization", "Cache-Control",
		"Connection", "Content-Disposition", "Content-Encoding", "Content-Language",
		"Content-Length", "Content-Range", "Content-Security-Policy", "Content-Type", "Cookie",
		"Date", "Etag", "Expect", "Expires", "Forwarded", "From",
		"Grpc-Accept-Encoding", "Grpc-Encoding", "Grpc-Message", "Grpc-Status", "Grpc-Timeout",
		"Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since",
		"Keep-Alive", "Last-Modified", "Link", "Location", "Max-Forwards", "Origin", "Pragma",
		"Proxy-Authorization", "Proxy-Connection", "Range", "Referer", "Retry-After", "Server",
		"Set-Cookie", "Strict-Transport-Security", "Te", "Trailer", "Traceparent", "Tracestate",
		"Transfer-Encoding", "Upgrade", "User-Agent", "Vary", "Via", "Www-Authenticate",
		"X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Spanid", "X-B3-Traceid",
		"X-Content-Type-Options", "X-Envoy-Attempt-Count", "X-Envoy-Expected-Rq-Timeout-Ms",
		"X-Envoy-Internal", "X-Envoy-Original-Path", "X-Envoy-Upstream-Service-Time",
		"X-Forwarded-Client-Cert", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Frame-Options", "X-Powered-By", "X-Real-Ip", "X-Request-Id",
	} {
		m[k] = k
	}
	return m
}()

// Get is http.Header.Get for a key that is already canonical (a
// constant such as "Content-Type"): the first value of h[key], or "",
// without canonicalising key again on every call.
func Get(h map[string][]string, key string) string {
	if vs := h[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Reusable is h emptied for another message when it had at most max
// fields, else nil: a large map, even cleared, costs its full size to
// range over, so a message that grew one does not pass it on.
func Reusable(h map[string][]string, max int) map[string][]string {
	if len(h) > max {
		return nil
	}
	clear(h)
	return h
}
