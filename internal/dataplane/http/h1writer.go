package http

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
)

// The layout of a response's write buffer: the head (and a chunk-size
// line) are copied into the headroom just before the body bytes, so that
// a head and a body that fits go out in one write; the tail room takes
// the chunk's CRLF and the last chunk.
const (
	writeHeadroom = 1 << 10
	writeBodyCap  = 16 << 10
	writeTailroom = 64
	writeBufSize  = writeHeadroom + writeBodyCap + writeTailroom
)

// maxKeptHeader is the most fields a response header map may have had to
// be cleared and kept for the connection's next response.
const maxKeptHeader = 32

// respWriter is the HTTP/1 response writer: http.ResponseWriter,
// http.Flusher, http.Hijacker, and what http.ResponseController asks for
// (FlushError, SetReadDeadline, SetWriteDeadline, EnableFullDuplex).
// One per connection, reset for each request; it belongs to the handler's
// goroutine, except writeContinue (the request body's reader) and the
// fields under wmu.
//
// It frames responses as net/http does: the handler's Content-Length
// when valid; else, when the handler returns with the whole body
// buffered, a Content-Length of its size; else chunked on HTTP/1.1
// (with trailers: the Trailer header's names and http.TrailerPrefix
// keys), or the body delimited by closing the connection on HTTP/1.0 (or
// with Transfer-Encoding: identity). HEAD, 1xx, 204 and 304 responses
// have no body. The head is a snapshot taken at WriteHeader (later header
// changes only matter as trailers); it is written with the first body
// bytes. Unlike net/http it does not sniff a Content-Type: a proxy passes
// the upstream's headers through as they are.
type respWriter struct {
	c    *h1conn
	req  *nethttp.Request
	body *reqBody
	// hdr is the response's header map. It is the connection's, cleared
	// for each request: the handler and the record's observers (which
	// read filter.Record.ResponseHeader only during Observe) are done
	// with it when the next request starts.
	hdr nethttp.Header

	// Request facts.
	http11      bool
	isHEAD      bool
	reqClose    bool
	keepAlive10 bool
	expect      bool // the request asked for 100-continue
	upgrade     bool

	// The head, snapshot at WriteHeader.
	wroteHeader bool
	status      int
	head        []byte // status line and the handler's headers but the framing ones
	cl          int64  // Content-Length to send, -1 for none
	te          string // the handler's Transfer-Encoding
	connHdr     []string
	hasDate     bool
	trailers    bool
	declared    []string // trailer names from the Trailer header
	switching   bool     // 101 with an Upgrade header

	// Sending.
	headSent   bool
	chunked    bool
	closeAfter bool
	fullDuplex bool
	hijacked   bool
	written    int64
	buf        []byte // the pooled write buffer: headroom, then body bytes
	bufp       *[]byte
	pre        []byte // scratch for the head as sent (per connection)
	werr       error

	wmu         sync.Mutex
	continueOff bool // 100 Continue sent, or no longer allowed
}

// reset prepares the writer for the request r.
func (w *respWriter) reset(r *nethttp.Request, h *requestHead, body *reqBody, expect bool) {
	c, head, pre, declared, hdr := w.c, w.head[:0], w.pre[:0], w.declared[:0], w.hdr
	if cap(head) > 8<<10 {
		head = nil
	}
	if hdr == nil || len(hdr) > maxKeptHeader {
		hdr = make(nethttp.Header, 8)
	} else {
		clear(hdr)
	}
	if cap(pre) > 8<<10 {
		pre = nil
	}
	*w = respWriter{
		c: c, req: r, body: body, hdr: hdr, head: head, pre: pre, declared: declared,
		http11:      h.minor >= 1,
		isHEAD:      h.method == nethttp.MethodHead,
		reqClose:    h.closeAfter,
		keepAlive10: h.keepAlive10 && h.minor == 0,
		expect:      expect,
		upgrade:     h.upgrade || h.method == nethttp.MethodConnect,
		cl:          -1,
		continueOff: !expect,
	}
}

func (w *respWriter) Header() nethttp.Header { return w.hdr }

// WriteHeader sends an informational status at once; a final one is
// taken as the head's snapshot and sent with the first body bytes (or
// when the handler returns or flushes).
func (w *respWriter) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 101 || code > 199 {
		w.disableContinue()
	}
	if code >= 100 && code <= 199 && code != nethttp.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader, w.status = true, code
	w.snapshot()
}

func (w *respWriter) disableContinue() {
	w.wmu.Lock()
	w.continueOff = true
	w.wmu.Unlock()
}

// writeContinue sends "100 Continue" before the request body is first
// read, unless the response has started.
func (w *respWriter) writeContinue() {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.continueOff {
		return
	}
	w.continueOff = true
	_, _ = io.WriteString(w.c.rwc, "HTTP/1.1 100 Continue\r\n\r\n")
}

func (w *respWriter) writeInformational(code int) {
	b := appendStatusLine(w.pre[:0], w.http11, code)
	for k, vs := range w.hdr {
		if k == "Content-Length" || k == "Transfer-Encoding" || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			b = appendHeader(b, k, v)
		}
	}
	b = append(b, "\r\n"...)
	w.pre = b[:0]
	if _, err := w.c.rwc.Write(b); err != nil && w.werr == nil {
		w.werr = err
	}
}

// snapshot serialises the status line and the handler's headers, except
// those the framing decides (Content-Length, Transfer-Encoding,
// Connection), and notes what the framing needs.
func (w *respWriter) snapshot() {
	code := w.status
	bodyOK := bodyAllowedForStatus(code)
	b := appendStatusLine(w.head[:0], w.http11, code)
	for k, vs := range w.hdr {
		switch k {
		case "Content-Length":
			if len(vs) > 0 {
				if v, err := strconv.ParseInt(vs[0], 10, 64); err == nil && v >= 0 {
					w.cl = v
				} else {
					w.c.srv.log.Debug("invalid response Content-Length", "value", vs[0])
				}
			}
			continue
		case "Transfer-Encoding":
			if len(vs) > 0 {
				w.te = vs[0]
			}
			continue
		case "Connection":
			w.connHdr = vs
			continue
		case "Date":
			w.hasDate = true
		case "Trailer":
			w.trailers = true
			for _, v := range vs {
				w.declareTrailers(v)
			}
		case "Content-Type":
			if code == nethttp.StatusNotModified {
				continue
			}
		case "Upgrade":
			w.switching = code == nethttp.StatusSwitchingProtocols
		}
		if strings.HasPrefix(k, nethttp.TrailerPrefix) {
			w.trailers = true
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue // net/http drops invalid names too
		}
		for _, v := range vs {
			b = appendHeader(b, k, v)
		}
	}
	w.head = b
	if !bodyOK && w.cl >= 0 {
		w.cl = -1 // suppressed for 1xx, 204, 304
	}
}

// declareTrailers adds the names of a Trailer header value.
func (w *respWriter) declareTrailers(v string) {
	for f := range strings.SplitSeq(v, ",") {
		f = h1wire.TrimOWS(f)
		if f == "" {
			continue
		}
		k := nethttp.CanonicalHeaderKey(f)
		if !httpguts.ValidTrailerHeader(k) {
			continue
		}
		w.declared = append(w.declared, k)
	}
}

func (w *respWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, nethttp.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(nethttp.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, nethttp.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.cl >= 0 && w.written > w.cl {
		return 0, nethttp.ErrContentLength
	}
	if w.isHEAD {
		return len(p), nil // counted, not sent
	}
	if w.werr != nil {
		return 0, w.werr
	}
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.bufp = w.c.srv.getWriteBuf()
			w.buf = (*w.bufp)[:writeHeadroom]
		}
		if w.headSent && !w.chunked && len(w.buf) == writeHeadroom && len(p) >= writeBodyCap {
			// A large write with nothing buffered goes out as it is.
			k, err := w.c.rwc.Write(p)
			if err != nil {
				w.werr = err
				return n - len(p) + k, err
			}
			return n, nil
		}
		k := min(writeHeadroom+writeBodyCap-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == writeHeadroom+writeBodyCap {
			if err := w.send(false); err != nil {
				return n - len(p), err
			}
		}
	}
	if w.complete() {
		// The whole response is here: it goes out now, not after the
		// handler has unwound (telemetry, timers, the upstream
		// connection's return), which is then off the client's path.
		if err := w.send(false); err != nil {
			return n, err
		}
	}
	return n, nil
}

// complete reports whether the bytes written are the whole response as
// its head declared (a Content-Length, no chunking, no trailers) and the
// request is fully read, so that nothing the handler does later can
// change what is sent: the response can be sent before the handler
// returns.
func (w *respWriter) complete() bool {
	return w.cl >= 0 && w.written == w.cl && w.te == "" && !w.trailers &&
		(w.body == nil || w.body.complete())
}

// Flush sends the head and what is buffered.
func (w *respWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the write error (http.ResponseController).
func (w *respWriter) FlushError() error {
	if w.hijacked {
		return nethttp.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(nethttp.StatusOK)
	}
	if w.headSent && (w.buf == nil || len(w.buf) == writeHeadroom) {
		return w.werr
	}
	return w.send(false)
}

// SetReadDeadline sets the connection's read deadline (the router uses
// it to unblock a request body read).
func (w *respWriter) SetReadDeadline(t time.Time) error { return w.c.setReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline.
func (w *respWriter) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex lets the handler read the request body while the
// response is written; without it, what is left of the body is read and
// discarded before the head is sent (as net/http does).
func (w *respWriter) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// Hijack hands the connection to the handler (upgrades): what was read
// and not consumed is replayed by the returned reader. Whatever response
// was started is flushed first.
func (w *respWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, nethttp.ErrHijacked
	}
	if w.wroteHeader {
		if err := w.send(false); err != nil {
			return nil, nil, err
		}
	}
	c := w.c
	c.endRequest()
	if err := c.clearStaleDeadline(); err != nil {
		return nil, nil, err
	}
	w.hijacked, c.hijacked = true, true
	w.release()
	var rd io.Reader = c.rwc
	if c.in.buffered() > 0 || c.in.hasPeek {
		rd = io.MultiReader(bytes.NewReader(c.in.pending()), c.rwc)
	}
	return c.rwc, bufio.NewReadWriter(bufio.NewReader(rd), bufio.NewWriter(c.rwc)), nil
}

// finish completes the response when the handler has returned.
func (w *respWriter) finish() {
	if w.hijacked {
		return
	}
	if !w.wroteHeader {
		w.WriteHeader(nethttp.StatusOK)
	}
	_ = w.send(true)
	if !w.isHEAD && w.cl >= 0 && bodyAllowedForStatus(w.status) && w.written != w.cl {
		w.closeAfter = true // did not write what it declared: out of sync
	}
	if w.werr != nil {
		w.closeAfter = true
	}
}

// release returns the write buffer to the pool.
func (w *respWriter) release() {
	if w.buf != nil {
		w.c.srv.putWriteBuf(w.bufp)
		w.buf, w.bufp = nil, nil
	}
}

// send writes the head (the first time), the buffered body bytes framed,
// and, when final, the end of a chunked body with its trailers: one write
// when it fits the buffer.
func (w *respWriter) send(final bool) error {
	if w.werr != nil {
		return w.werr
	}
	pre := w.pre[:0]
	if !w.headSent {
		pre = w.appendHead(pre, final)
		w.headSent = true
	}
	var body []byte
	if w.buf != nil {
		body = w.buf[writeHeadroom:]
	}
	if w.chunked && len(body) > 0 {
		pre = strconv.AppendInt(pre, int64(len(body)), 16)
		pre = append(pre, "\r\n"...)
	}
	var out []byte
	if w.buf == nil {
		out = pre
		if final && w.chunked {
			out = w.appendLastChunk(out)
		}
	} else {
		out = w.buf
		if w.chunked && len(body) > 0 {
			out = append(out, "\r\n"...)
		}
		if final && w.chunked {
			out = w.appendLastChunk(out)
		}
		start := writeHeadroom
		if len(pre) <= writeHeadroom {
			start -= len(pre)
			copy(out[start:], pre)
		} else if err := w.write(pre); err != nil {
			return err
		}
		out = out[start:]
		w.buf = w.buf[:writeHeadroom]
	}
	w.pre = pre[:0]
	if len(out) == 0 {
		return nil
	}
	return w.write(out)
}

func (w *respWriter) write(b []byte) error {
	if _, err := w.c.rwc.Write(b); err != nil {
		w.werr = err
		w.closeAfter = true
		return err
	}
	return nil
}

// appendHead decides the framing (final: the handler has returned and
// everything written is buffered) and appends the complete head.
func (w *respWriter) appendHead(b []byte, final bool) []byte {
	code := w.status
	bodyOK := bodyAllowedForStatus(code)
	hasTE := w.te != ""
	if final && !w.trailers && !hasTE && bodyOK && w.cl < 0 && (!w.isHEAD || w.written > 0) {
		w.cl = w.written
	}
	if w.cl >= 0 && hasTE && w.te != "identity" {
		w.cl = -1 // both: the Content-Length goes (net/http)
	}
	hasCL := w.cl >= 0

	keepAlive10 := w.keepAlive10 && (w.isHEAD || hasCL || !bodyOK)
	if !keepAlive10 && (!w.http11 || w.reqClose) {
		w.closeAfter = true
	}
	if w.upgrade || hasToken(w.connHdr, "close") || w.c.srv.draining.Load() {
		w.closeAfter = true
	}
	if w.expect && (w.body == nil || !w.body.complete()) {
		// The client waited for a 100 Continue it did not get (or its
		// body was not read): the rest of the wire is not a request.
		w.closeAfter = true
	}
	if w.body != nil && !w.closeAfter && !w.fullDuplex && !w.body.finish() {
		// Read the unread body before answering, as net/http does
		// (clients that send the whole request before reading would
		// otherwise deadlock); too much of it closes the connection.
		w.closeAfter = true
	}

	chunked := false
	switch {
	case w.isHEAD || !bodyOK:
	case hasCL:
	case w.http11 && w.te == "identity":
		w.closeAfter = true
	case w.http11:
		chunked = true
	default:
		w.closeAfter = true
	}
	w.chunked = chunked

	b = append(b, w.head...)
	if w.closeAfter && !hasToken(w.connHdr, "close") && !w.switching {
		if w.http11 {
			b = append(b, "Connection: close\r\n"...)
		}
	} else {
		for _, v := range w.connHdr {
			b = appendHeader(b, "Connection", v)
		}
		if keepAlive10 && w.connHdr == nil {
			b = append(b, "Connection: keep-alive\r\n"...)
		}
	}
	if chunked {
		if hasTE && !asciiEqualFold(w.te, "chunked") && w.te != "identity" {
			b = appendHeader(b, "Transfer-Encoding", w.te)
		}
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if hasCL && bodyOK {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.cl, 10)
		b = append(b, "\r\n"...)
	}
	if !w.hasDate {
		b = append(b, "Date: "...)
		b = w.c.srv.dates.appendDate(b, time.Now())
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// appendLastChunk appends the last chunk, the trailers and the end of the
// chunked body.
func (w *respWriter) appendLastChunk(b []byte) []byte {
	b = append(b, "0\r\n"...)
	for k, vs := range w.hdr {
		name, ok := strings.CutPrefix(k, nethttp.TrailerPrefix)
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		for _, v := range vs {
			b = appendHeader(b, name, v)
		}
	}
	for _, k := range w.declared {
		for _, v := range w.hdr[k] {
			b = appendHeader(b, k, v)
		}
	}
	return append(b, "\r\n"...)
}

// appendStatusLine appends "HTTP/1.x code text\r\n".
func appendStatusLine(b []byte, http11 bool, code int) []byte {
	if http11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	if text := nethttp.StatusText(code); text != "" {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ' ')
		b = append(b, text...)
	} else {
		b = fmt.Appendf(b, "%03d status code %d", code, code)
	}
	return append(b, "\r\n"...)
}

// appendHeader appends "k: v\r\n", v trimmed and with CR and LF turned
// into spaces (as net/http writes header values).
func appendHeader(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	v = h1wire.TrimOWS(v)
	if strings.ContainsAny(v, "\r\n") {
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c == '\r' || c == '\n' {
				c = ' '
			}
			b = append(b, c)
		}
	} else {
		b = append(b, v...)
	}
	return append(b, "\r\n"...)
}

// bodyAllowedForStatus reports whether a response with this status may
// have a body (RFC 9110: not 1xx, 204, 304).
func bodyAllowedForStatus(code int) bool {
	switch {
	case code >= 100 && code <= 199:
		return false
	case code == nethttp.StatusNoContent, code == nethttp.StatusNotModified:
		return false
	}
	return true
}

// hasToken reports whether a comma-separated header value list holds
// token (case-insensitively).
func hasToken(vs []string, token string) bool {
	return httpguts.HeaderValuesContainsToken(vs, token)
}
