package http

import (
	"context"
	nethttp "net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// protocolError is an HTTP/1 request the codec refuses: it is answered
// with Status (and its reason as the body) and the connection is closed.
// Errors found in a request body (chunked framing) are reported to the
// handler through the body's Read and connState.protocolErr.
type protocolError struct {
	status int
	reason string
}

func (e *protocolError) Error() string { return "http/1 protocol error: " + e.reason }

func badRequest(reason string) *protocolError {
	return &protocolError{status: nethttp.StatusBadRequest, reason: reason}
}

// Limits of the HTTP/1 codec that are not configurable.
const (
	// maxChunkLine bounds a chunk-size line (net/http's limit).
	maxChunkLine = 4096
	// maxPostHandlerDrain is how much of an unread request body is read
	// and discarded after the response, to keep the connection; a longer
	// rest closes it (net/http's maxPostHandlerReadBytes).
	maxPostHandlerDrain = 256 << 10
)

// requestHead is a parsed HTTP/1 request head: what becomes the
// *http.Request, plus the framing and connection facts the codec acts on.
type requestHead struct {
	method, uri, proto string
	major, minor       int
	header             nethttp.Header
	host               string
	hasHost            bool

	contentLength int64 // -1: chunked; 0: no body
	chunked       bool
	// closeAfter: Connection: close, or HTTP/1.0 without keep-alive.
	closeAfter bool
	// keepAlive10: an HTTP/1.0 request with Connection: keep-alive.
	keepAlive10 bool
	// expect is the Expect header ("" when absent).
	expect string
	// upgrade: an Upgrade header other than h2c (what follows the
	// request is another protocol, or nothing).
	upgrade bool

	// spare is the connection's storage for what a head becomes, kept
	// across heads (parseHead leaves it); nil outside a connection.
	spare *headSpare
}

// headSpare is what an HTTP/1 connection's requests take turns using,
// one after another: the header map and value array parseHead fills, and
// the *http.Request and URL that request builds. A request's are the next
// one's only once the connection has recycled them (its handler returned
// and the request ended cleanly, so that nothing holds them); until then,
// or when they grew large, a head gets new ones.
type headSpare struct {
	free bool // recycled: the fields below may be reused

	hdr  nethttp.Header
	strs []string
	req  *nethttp.Request
	url  *url.URL
	// base carries the connection's context (the unexported field
	// WithContext sets): a request is a copy of it, without the
	// allocation WithContext makes per request.
	base *nethttp.Request
}

// Beyond these sizes a head's map and value array are not kept: a
// cleared map still costs its full size to range over. The map is
// counted after the handler: the proxy adds its own fields to a
// request's headers.
const (
	spareFields = 32
	spareValues = 32 // values in the kept array
)

// recycle marks the last request's storage as free for the next one.
func (p *headSpare) recycle() {
	if len(p.hdr) > spareFields || cap(p.strs) > spareValues {
		p.hdr, p.strs = nil, nil
	}
	p.free = true
}

// header returns an empty header map and a value array of n entries,
// reused when free.
func (p *headSpare) header(n int) (nethttp.Header, []string) {
	if p == nil {
		return make(nethttp.Header, n), make([]string, n)
	}
	if p.free && p.hdr != nil {
		clear(p.hdr)
	} else {
		p.hdr = make(nethttp.Header, n)
	}
	if p.free && cap(p.strs) >= n {
		p.strs = p.strs[:n]
		clear(p.strs)
	} else {
		p.strs = make([]string, n)
	}
	return p.hdr, p.strs
}

// request returns a request carrying ctx, with its other fields zero, and
// a zero URL: reused when free, after which nothing is free until the
// next recycle (new ones without a spare).
func (p *headSpare) request(ctx context.Context) (*nethttp.Request, *url.URL) {
	if p == nil {
		return (&nethttp.Request{}).WithContext(ctx), new(url.URL)
	}
	if p.base == nil || p.base.Context() != ctx {
		p.base = (&nethttp.Request{}).WithContext(ctx)
	}
	if !p.free || p.req == nil {
		p.req, p.url = new(nethttp.Request), new(url.URL)
	}
	p.free = false
	*p.req, *p.url = *p.base, url.URL{}
	return p.req, p.url
}

// findHeadEnd looks for the end of a request head in b, scanning from
// from (what an earlier call already scanned; 0 the first time). It
// returns the head's length including its empty line, or 0 with the
// offset to resume from. Leading empty lines (RFC 9112 2.2) must have been
// skipped by the caller.
func findHeadEnd(b []byte, from int) (end, next int) {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		// An empty line: "\n\n" or "\n\r\n".
		if i >= 1 && b[i-1] == '\n' {
			return i + 1, 0
		}
		if i >= 2 && b[i-1] == '\r' && b[i-2] == '\n' {
			return i + 1, 0
		}
	}
	// Resume two bytes back, so a "\n\r" at the end is seen again.
	return 0, max(len(b)-2, 0)
}

// skipEmptyLines returns how many leading CR and LF bytes b has.
func skipEmptyLines(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// parseHead parses a complete request head (the request line, header
// lines and the empty line, as findHeadEnd delimits it). The header map
// is built directly, with canonical keys; every string is a substring of
// one copy of the head. It applies the framing rules a proxy must
// (request smuggling, SECURITY B2–B4, B6):
//
//   - lines end with CRLF or a bare LF; a CR anywhere else is rejected;
//   - obs-fold continuation lines are rejected;
//   - header names must be tokens (no whitespace before the colon) and
//     values free of control characters other than HTAB;
//   - Content-Length must be decimal, and repeated only with one value;
//   - Transfer-Encoding must be exactly "chunked", once, on HTTP/1.1, and
//     never together with Content-Length (400; another coding is 501);
//   - HTTP/1.1 needs exactly one valid Host header (HTTP/1.0 may have
//     none; the handler decides).
func parseHead(b []byte, h *requestHead) *protocolError {
	s := string(b) // the one copy every string below points into
	line, rest := h1wire.CutLine(s)
	method, target, proto, perr := parseRequestLine(line)
	if perr != nil {
		return perr
	}
	*h = requestHead{method: method, uri: target, proto: proto, spare: h.spare}
	var ok bool
	if h.major, h.minor, ok = parseVersion(proto); !ok {
		return badRequest("malformed HTTP version")
	}
	if h.major != 1 {
		return &protocolError{status: nethttp.StatusHTTPVersionNotSupported, reason: "unsupported HTTP version"}
	}

	// Count the header lines first, to size the map and the one backing
	// array of the values (as net/textproto does).
	n := strings.Count(rest, "\n")
	hdr, strs := h.spare.header(n)
	var (
		cl0, te0     string
		ncl, nte     int
		clDiffer     bool
		nhost        int
		conn         []string
		upgradeValue string
	)
	for {
		line, rest = h1wire.CutLine(rest)
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return badRequest("obs-fold header continuation")
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return badRequest("malformed header line")
		}
		name := line[:colon]
		if !httpguts.ValidHeaderFieldName(name) {
			return badRequest("invalid header name")
		}
		value := h1wire.TrimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(value) {
			return badRequest("invalid header value")
		}
		key := h1wire.CanonicalKey(name)
		switch key {
		case "Host":
			nhost++
			h.host = value
			continue // net/http moves it to Request.Host
		case "Content-Length":
			ncl++
			if ncl > 1 {
				if value != cl0 {
					clDiffer = true
				}
				continue // one value is kept
			}
			cl0 = value
		case "Transfer-Encoding":
			nte++
			if nte == 1 {
				te0 = value
			}
		case "Connection":
			conn = append(conn, value)
		case "Upgrade":
			upgradeValue = value
		case "Expect":
			h.expect = value
		}
		if vs := hdr[key]; vs != nil {
			hdr[key] = append(vs, value)
		} else {
			strs[0] = value
			hdr[key] = strs[:1:1]
			strs = strs[1:]
		}
	}
	h.header = hdr

	switch {
	case nte > 0:
		switch {
		case ncl > 0:
			return badRequest("Content-Length with Transfer-Encoding")
		case h.major == 1 && h.minor == 0:
			return badRequest("Transfer-Encoding on HTTP/1.0")
		case nte > 1:
			return badRequest("repeated Transfer-Encoding")
		case !strings.EqualFold(te0, "chunked"):
			return &protocolError{status: nethttp.StatusNotImplemented, reason: "unsupported transfer encoding"}
		}
		h.chunked, h.contentLength = true, -1
	case ncl > 0:
		v, ok := h1wire.ParseContentLength(cl0)
		if !ok {
			return badRequest("invalid Content-Length")
		}
		if clDiffer {
			return badRequest("differing Content-Length values")
		}
		h.contentLength = v
	}

	switch {
	case nhost > 1:
		return badRequest("too many Host headers")
	case nhost == 1:
		if !httpguts.ValidHostHeader(h.host) {
			return badRequest("malformed Host header")
		}
		h.hasHost = true
	case h.minor >= 1 && method != "CONNECT":
		return badRequest("missing required Host header")
	}

	hasClose := httpguts.HeaderValuesContainsToken(conn, "close")
	if h.minor == 0 {
		h.keepAlive10 = httpguts.HeaderValuesContainsToken(conn, "keep-alive")
		h.closeAfter = hasClose || !h.keepAlive10
	} else {
		h.closeAfter = hasClose
	}
	h.upgrade = upgradeValue != "" && !strings.EqualFold(upgradeValue, "h2c")
	return nil
}

// parseRequestLine splits "METHOD SP request-target SP HTTP-version" as
// net/http does, and checks the method and the target's bytes.
func parseRequestLine(line string) (method, target, proto string, err *protocolError) {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || target == "" {
		return "", "", "", badRequest("malformed request line")
	}
	if !h1wire.ValidToken(method) {
		return "", "", "", badRequest("invalid method")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			return "", "", "", badRequest("invalid request target")
		}
	}
	return method, target, proto, nil
}

// parseVersion parses "HTTP/x.y" with one-digit numbers.
func parseVersion(v string) (major, minor int, ok bool) {
	switch v {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	if len(v) != 8 || !strings.HasPrefix(v, "HTTP/") || v[6] != '.' {
		return 0, 0, false
	}
	if v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9' {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

// request builds the *http.Request of a parsed head, as net/http's
// readRequest would: the URL from the target (authority-form for CONNECT),
// Host from an absolute-form target or the Host header. Body, RemoteAddr
// and TLS are the caller's to set. With a spare, the request and its URL
// are the spare's.
func (h *requestHead) request(ctx context.Context) (*nethttp.Request, *protocolError) {
	raw := h.uri
	justAuthority := h.method == nethttp.MethodConnect && !strings.HasPrefix(raw, "/")
	if justAuthority {
		raw = "http://" + raw
	}
	r, u := h.spare.request(ctx)
	if !parseOriginForm(raw, u) {
		pu, err := url.ParseRequestURI(raw)
		if err != nil {
			return nil, badRequest("malformed request target")
		}
		*u = *pu
	}
	if justAuthority {
		u.Scheme = ""
	}
	r.Method, r.URL = h.method, u
	r.Proto, r.ProtoMajor, r.ProtoMinor = h.proto, h.major, h.minor
	r.Header, r.Host, r.RequestURI, r.Close = h.header, u.Host, h.uri, h.closeAfter
	if r.Host == "" {
		r.Host = h.host
	}
	return r, nil
}

// parseOriginForm is url.ParseRequestURI for the common request target:
// an absolute path of bytes url.URL keeps as they are (no escapes and
// nothing it would escape, so Path is the text and RawPath is empty) and
// a query without control bytes. It reports false for anything else, and
// the caller parses with url.ParseRequestURI, which gives the same URL
// for every target this takes (FuzzOriginForm) at several times the cost.
// It fills u, a zero URL, when it reports true.
func parseOriginForm(raw string, u *url.URL) bool {
	if raw == "" || raw[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(raw, "?")
	for i := 0; i < len(path); i++ {
		if !pathByte[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	u.Path, u.RawQuery, u.ForceQuery = path, query, hasQuery && query == ""
	return true
}

// pathByte marks the bytes url.URL neither unescapes nor escapes in a
// path: letters, digits, "-_.~" and "$&+,/:;=@".
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()
