package pool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// bodyMode is how a response body is framed.
type bodyMode uint8

const (
	bodyNone    bodyMode = iota
	bodyLength           // Content-Length
	bodyChunked          // Transfer-Encoding: chunked
	bodyClose            // until the connection closes
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedResponse, fmt.Sprintf(format, args...))
}

// readResponse reads the response to req: heads of 1xx responses other
// than 101 are skipped (their bytes count against the head limit), as
// net/http does.
func (c *h1Conn) readResponse(_ context.Context, req *http.Request) (*http.Response, error) {
	limit := maxHeadBytes
	for {
		head, err := readHead(c.br, c.hbuf[:0], limit, false)
		if cap(head) <= maxHeadBytes/4 {
			c.hbuf = head[:0] // keep a modest buffer for the next head
		}
		if err != nil {
			return nil, err
		}
		limit -= len(head)
		r := c.newResponse()
		resp := &r.resp
		if err := parseHead(string(head), resp, r.vals[:], r.header); err != nil {
			return nil, err
		}
		if resp.StatusCode/100 == 1 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		resp.Request = req
		return c.startBody(r)
	}
}

// h1Response is a response and what comes with it, allocated together:
// its body, the pool's wrapper of that body (pool.go: RoundTrip), and
// the values of a head with few fields. It lives as long as the caller
// holds the response, unless the caller releases it (body.Release): then
// the struct, its header map and its value array serve a later response
// of the same pool. The head's text (the values' strings) is never
// reused.
type h1Response struct {
	resp http.Response
	body h1Body
	// wrap is the pool's body (RoundTrip sets it up and hands out
	// &wrap as resp.Body).
	wrap body
	vals [smallHead]string
	// header is an empty map kept from a released response, nil when
	// there is none.
	header http.Header
	// free is where it goes when released (the pool's resps).
	free *sync.Pool
}

// smallHead is how many field values a head may have to take them from
// h1Response.vals rather than an array of their own; a released
// response keeps its header map when it had no more fields than that.
const smallHead = 8

// newResponse is a released response of the pool, or a new one.
func (c *h1Conn) newResponse() *h1Response {
	if r, ok := c.resps.Get().(*h1Response); ok {
		return r
	}
	return &h1Response{free: c.resps}
}

// release zeroes r, keeping its header map (cleared) when it is small,
// and hands it to its pool.
func (r *h1Response) release() {
	free := r.free
	*r = h1Response{header: h1wire.Reusable(r.resp.Header, smallHead), free: free}
	free.Put(r)
}

// startBody frames the response body and ends the request at once when
// there is none.
func (c *h1Conn) startBody(r *h1Response) (*http.Response, error) {
	resp := &r.resp
	if resp.StatusCode == http.StatusSwitchingProtocols {
		c.upgraded()
		resp.Body = h1Upgrade{c}
		return resp, nil
	}
	mode, n, err := framing(resp, c.reqMethod)
	if err != nil {
		return nil, err
	}
	keepAlive := hasToken(resp.Header["Connection"], "keep-alive")
	if resp.ProtoMinor > 0 {
		keepAlive = !hasToken(resp.Header["Connection"], "close")
	}
	resp.Close = !keepAlive || mode == bodyClose
	c.reqKeepAlive = c.reqKeepAlive && !resp.Close
	if mode == bodyNone {
		resp.Body = http.NoBody
		c.finish(true)
		return resp, nil
	}
	r.body = h1Body{c: c, resp: resp, mode: mode, n: n, outer: r}
	resp.Body = &r.body
	return resp, nil
}

// readHead reads one head from br up to its empty line, appending to buf,
// and returns it without the empty line. limit bounds its size; empty
// allows a head without lines (trailers).
func readHead(br *bufio.Reader, buf []byte, limit int, empty bool) ([]byte, error) {
	start := 0 // of the current line in buf
	for {
		line, err := br.ReadSlice('\n')
		if len(buf)+len(line) > limit {
			return buf, malformed("head over %d bytes", maxHeadBytes)
		}
		buf = append(buf, line...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(buf) > 0:
			return buf, io.ErrUnexpectedEOF
		case err != nil:
			return buf, err
		}
		l := buf[start:]
		if len(l) == 1 || len(l) == 2 && l[0] == '\r' {
			if start == 0 && !empty {
				return buf, malformed("empty status line")
			}
			return buf[:start], nil
		}
		start = len(buf)
	}
}

// parseHead parses a response head (status line and fields, without the
// empty line) into resp. Header keys are canonical; values are
// substrings of s. small is room for the values of a head with at most
// len(small) fields (a larger one gets an array of its own); h, when not
// nil, is an empty map to fill for such a head.
func parseHead(s string, resp *http.Response, small []string, h http.Header) error {
	line, rest := h1wire.CutLine(s)
	if len(line) < 12 || line[:7] != "HTTP/1." || line[8] != ' ' || len(line) > 12 && line[12] != ' ' {
		return malformed("status line %q", line)
	}
	*resp = http.Response{Status: line[9:], ProtoMajor: 1}
	switch line[7] {
	case '0':
		resp.Proto = "HTTP/1.0"
	case '1':
		resp.Proto, resp.ProtoMinor = "HTTP/1.1", 1
	default:
		return malformed("unsupported version in status line %q", line)
	}
	for _, c := range []byte(line[9:12]) {
		if c < '0' || c > '9' {
			return malformed("status code in %q", line)
		}
		resp.StatusCode = resp.StatusCode*10 + int(c-'0')
	}
	if resp.StatusCode < 100 {
		return malformed("status code in %q", line)
	}
	if !httpguts.ValidHeaderFieldValue(line[9:]) {
		return malformed("reason phrase in %q", line)
	}
	n := strings.Count(rest, "\n")
	if n > maxHeaderFields {
		return malformed("more than %d header fields", maxHeaderFields)
	}
	vals := small
	switch {
	case n > len(small):
		vals = make([]string, n)
		resp.Header = make(http.Header, n)
	case h != nil:
		resp.Header = h
	default:
		resp.Header = make(http.Header, n)
	}
	return parseFields(rest, resp.Header, vals)
}

// parseFields adds the field lines of s to h, taking the first value of
// each name from vals (sized for every line) so that fields cost no
// allocation of their own. Obsolete line folding is refused.
func parseFields(s string, h http.Header, vals []string) error {
	for s != "" {
		var line string
		line, s = h1wire.CutLine(s)
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			return malformed("folded or empty header line")
		}
		i := strings.IndexByte(line, ':')
		if i <= 0 || !httpguts.ValidHeaderFieldName(line[:i]) {
			return malformed("header line %q", line)
		}
		v := h1wire.TrimOWS(line[i+1:])
		if !httpguts.ValidHeaderFieldValue(v) {
			return malformed("header value of %q", line[:i])
		}
		k := h1wire.CanonicalKey(line[:i])
		if vs, ok := h[k]; ok {
			h[k] = append(vs, v)
			continue
		}
		vals[0] = v
		h[k] = vals[:1:1]
		vals = vals[1:]
	}
	return nil
}

// framing decides how the body of resp, the response to a request with
// method, is delimited, and sets resp.ContentLength and
// resp.TransferEncoding as net/http does. A response with both
// Transfer-Encoding and Content-Length is refused (a smuggling vector;
// Envoy refuses it too), as are other transfer codings than chunked.
func framing(resp *http.Response, method string) (bodyMode, int64, error) {
	h := resp.Header
	cl := int64(-1)
	if vs, ok := h["Content-Length"]; ok {
		for _, v := range vs {
			n, ok := h1wire.ParseContentLength(v)
			if !ok || cl >= 0 && n != cl {
				return 0, 0, malformed("Content-Length %q", vs)
			}
			cl = n
		}
		h["Content-Length"] = vs[:1]
	}
	te, chunked := h["Transfer-Encoding"]
	if chunked {
		switch {
		case resp.ProtoMinor == 0:
			return 0, 0, malformed("Transfer-Encoding in an HTTP/1.0 response")
		case len(te) != 1 || !strings.EqualFold(te[0], "chunked"):
			return 0, 0, malformed("unsupported Transfer-Encoding %q", te)
		case cl >= 0:
			return 0, 0, malformed("both Transfer-Encoding and Content-Length")
		}
		delete(h, "Transfer-Encoding")
		resp.TransferEncoding = []string{"chunked"}
	}
	code := resp.StatusCode
	if method == http.MethodHead || code/100 == 1 || code == http.StatusNoContent || code == http.StatusNotModified {
		resp.ContentLength = 0
		if method == http.MethodHead {
			resp.ContentLength = cl
		}
		return bodyNone, 0, nil
	}
	switch {
	case chunked:
		resp.ContentLength = -1
		if err := declareTrailers(resp); err != nil {
			return 0, 0, err
		}
		return bodyChunked, 0, nil
	case cl == 0:
		resp.ContentLength = 0
		return bodyNone, 0, nil
	case cl > 0:
		resp.ContentLength = cl
		return bodyLength, cl, nil
	}
	resp.ContentLength = -1
	return bodyClose, 0, nil
}

// declareTrailers moves the names a chunked response announces in its
// Trailer field to resp.Trailer, as net/http does (values come at the
// end of the body).
func declareTrailers(resp *http.Response) error {
	vs, ok := resp.Header["Trailer"]
	if !ok {
		return nil
	}
	t := http.Header{}
	for _, v := range vs {
		for v != "" {
			var k string
			k, v, _ = strings.Cut(v, ",")
			if k = h1wire.TrimOWS(k); k == "" {
				continue
			}
			if !httpguts.ValidHeaderFieldName(k) {
				return malformed("Trailer %q", vs)
			}
			k = h1wire.CanonicalKey(k)
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return malformed("Trailer %q", vs)
			}
			t[k] = nil
		}
	}
	delete(resp.Header, "Trailer")
	resp.Trailer = t
	return nil
}

// h1Body is a response body. The request ends at its end (EOF, the
// connection may be reused), at a read error or at Close (the connection
// closes unless the rest of a Content-Length body is already buffered).
// Close may come from another goroutine than Read.
type h1Body struct {
	c     *h1Conn
	resp  *http.Response
	outer *h1Response // what it was allocated with
	mode  bodyMode
	n     int64 // left in the body (bodyLength) or the chunk (bodyChunked)
	crlf  bool  // a chunk's data was read; its CRLF was not

	mu      sync.Mutex
	reading bool
	ended   bool
	err     error // returned by reads after the end
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.ended {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	if len(p) == 0 {
		b.mu.Unlock()
		return 0, nil
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.read(p)
	b.mu.Lock()
	b.reading = false
	if b.ended { // closed meanwhile
		err = b.err
		b.mu.Unlock()
		return n, err
	}
	if err != nil {
		b.ended = true
		if err != io.EOF {
			b.c.closeWith(err)
			err = b.c.Err()
		}
		b.err = err
	}
	b.mu.Unlock()
	switch {
	case err == io.EOF:
		b.c.finish(b.mode != bodyClose)
	case err != nil:
		b.c.finish(false)
	}
	return n, err
}

func (b *h1Body) read(p []byte) (int, error) {
	br := b.c.br
	switch b.mode {
	case bodyLength:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err := br.Read(p)
		b.n -= int64(n)
		switch {
		case b.n == 0:
			return n, io.EOF
		case err == io.EOF:
			return n, io.ErrUnexpectedEOF
		}
		return n, err
	case bodyChunked:
		return b.readChunked(p)
	}
	n, err := br.Read(p)
	return n, err
}

// lastChunk is a chunk's CRLF, the last chunk and the end of a body
// without trailers.
const lastChunk = "\r\n0\r\n\r\n"

func (b *h1Body) readChunked(p []byte) (int, error) {
	br := b.c.br
	for b.n == 0 {
		if b.crlf {
			if err := readCRLF(br); err != nil {
				return 0, err
			}
			b.crlf = false
		}
		size, err := readChunkSize(br)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			return 0, b.readTrailers()
		}
		b.n = size
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := br.Read(p)
	b.n -= int64(n)
	if b.n == 0 {
		b.crlf = true
		// The end of the body is usually right behind the last data:
		// report EOF with it when it is already buffered.
		if br.Buffered() >= len(lastChunk) {
			if peek, _ := br.Peek(len(lastChunk)); string(peek) == lastChunk {
				_, _ = br.Discard(len(lastChunk))
				return n, io.EOF
			}
		}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func readCRLF(br *bufio.Reader) error {
	var two [2]byte
	if _, err := io.ReadFull(br, two[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if two != [2]byte{'\r', '\n'} {
		return malformed("chunk data not followed by CRLF")
	}
	return nil
}

// readChunkSize reads a chunk size line (extensions ignored).
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return 0, malformed("chunk size line too long")
	case err == io.EOF:
		return 0, io.ErrUnexpectedEOF
	case err != nil:
		return 0, err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	n, ok := h1wire.ParseChunkSize(line)
	if !ok {
		return 0, malformed("chunk size %q", line)
	}
	return n, nil
}

// readTrailers reads the trailer section after the last chunk into
// resp.Trailer and returns io.EOF.
func (b *h1Body) readTrailers() error {
	c := b.c
	head, err := readHead(c.br, c.hbuf[:0], maxHeadBytes, true)
	if err != nil {
		return err
	}
	if len(head) == 0 {
		return io.EOF
	}
	s := string(head)
	n := strings.Count(s, "\n")
	if n > maxHeaderFields {
		return malformed("more than %d trailer fields", maxHeaderFields)
	}
	t := http.Header{}
	if err := parseFields(s, t, make([]string, n)); err != nil {
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = make(http.Header, len(t))
	}
	for k, vs := range t {
		b.resp.Trailer[k] = vs
	}
	return io.EOF
}

// Close ends the response. Before EOF, the connection is kept only when
// the rest of a Content-Length body is already buffered (it is skipped);
// otherwise it closes.
func (b *h1Body) Close() error {
	b.mu.Lock()
	if b.ended {
		b.mu.Unlock()
		return nil
	}
	b.ended, b.err = true, errReadOnClosed
	reading := b.reading
	b.mu.Unlock()
	br := b.c.br
	if !reading && b.mode == bodyLength && b.n <= int64(br.Buffered()) {
		_, _ = br.Discard(int(b.n))
		b.c.finish(true)
		return nil
	}
	b.c.closeWith(errBodyClosed)
	b.c.finish(false)
	return nil
}
