package http

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// h1Server is the connection manager's own HTTP/1.1 codec: it serves the
// requests of one plaintext (or TLS without h2) connection in order on
// the connection's goroutine, and hands a connection that opens with the
// HTTP/2 preface to net/http (handoff). See doc.go for the design.
type h1Server struct {
	handler nethttp.Handler
	log     *slog.Logger
	// maxHead bounds a request head (request line and header lines) and
	// a chunked body's trailers: 431 beyond it.
	maxHead int
	// headerTimeout bounds reading a request head once its first byte is
	// in (for a connection's first request, from the start); 0: none.
	headerTimeout time.Duration
	// idleTimeout bounds the wait for the next request; 0: none.
	idleTimeout time.Duration
	// closeCheck is how long a request runs before the connection is
	// watched for the client going away (see h1conn.watch).
	closeCheck time.Duration
	// stats records a limit counter (Manager.count); nil: none.
	stats func(Stat)
	// handoff serves a connection that starts with the HTTP/2 preface;
	// c replays the bytes already read.
	handoff func(ctx context.Context, c net.Conn, cs *connState)

	// draining: every response closes its connection (Manager.Drain).
	draining atomic.Bool

	rbufs sync.Pool // *[]byte of readBufSize: connections' read buffers
	wbufs sync.Pool // *[]byte of writeBufSize: responses' write buffers
	dates dateCache
	// watch is the clock of the connections' close watches.
	watch closeWatch
}

const (
	// readBufSize is a connection's read buffer; a larger head grows it
	// for that request only.
	readBufSize = 4 << 10
	// defaultCloseCheck is h1Server.closeCheck.
	defaultCloseCheck = 50 * time.Millisecond
	// lingerTimeout bounds the wait for the client's FIN after the proxy
	// half-closed a connection with unread input (so that closing does not
	// reset the connection before the client read the response).
	lingerTimeout = 500 * time.Millisecond
)

// errDownstreamClosed cancels a connection's context when the client is
// seen gone while a request is in flight (a downstream disconnect, DC).
var errDownstreamClosed = errors.New("downstream connection closed")

func (s *h1Server) getReadBuf() []byte {
	if p, ok := s.rbufs.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, readBufSize)
}

func (s *h1Server) putReadBuf(b []byte) {
	if cap(b) == readBufSize {
		b = b[:readBufSize]
		s.rbufs.Put(&b)
	}
}

// getWriteBuf returns a pooled write buffer, empty; the pointer goes
// back with putWriteBuf (so that returning it allocates nothing).
func (s *h1Server) getWriteBuf() *[]byte {
	if p, ok := s.wbufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, writeBufSize)
	return &b
}

func (s *h1Server) putWriteBuf(p *[]byte) {
	if cap(*p) == writeBufSize {
		*p = (*p)[:0]
		s.wbufs.Put(p)
	}
}

// h1conn is one HTTP/1 connection being served. Its fields belong to the
// serving goroutine, except those under mu (the close watch) and what the
// request body and response writer document.
type h1conn struct {
	srv        *h1Server
	cs         *connState
	rwc        *listener.Conn
	ctx        context.Context // Serve's, with connKey; cancelled on DC; a *connCtx (watchers)
	cancel     context.CancelCauseFunc
	remoteAddr string
	in         inbuf
	head       requestHead // the current request's head (reused)
	spare      headSpare   // head.spare: storage the requests take turns using
	w          respWriter
	hijacked   bool

	// The close watch (watch, tick, bodyDone, endRequest,
	// backgroundRead), on the server's clock (closeWatch).
	mu       sync.Mutex
	seq      uint64 // requests started on the connection
	seenSeq  uint64 // seq at the clock's last tick
	active   bool   // a request is in flight
	delayed  bool   // it has run for closeCheck
	bodyEOF  bool   // its body is read (or it has none)
	reading  bool   // backgroundRead is running
	aborting bool   // endRequest is stopping backgroundRead
	readDone chan struct{}

	// A read deadline that is not the request's — the one that bounded
	// the wait for its head, or the one that stopped the close watch —
	// is left set: a request without a body never reads the connection
	// again, and clearing it would be one more timer update on the
	// request's path. What reads the connection during the request (the
	// body, the close watch, a hijacker) clears it first
	// (clearStaleDeadline); the next head's wait replaces it.
	dlMu          sync.Mutex
	staleDeadline bool // under dlMu
}

// serve serves cs's connection until it ends or ctx is done.
func (s *h1Server) serve(ctx context.Context, cs *connState) {
	c := &h1conn{srv: s, cs: cs, rwc: cs.lc}
	c.head.spare = &c.spare
	c.in.conn = cs.lc
	c.in.buf = s.getReadBuf()
	c.w.c = c
	cctx, cancel := context.WithCancelCause(ctx)
	c.cancel = cancel
	var stopWatch func() bool
	c.ctx, stopWatch = newConnCtx(context.WithValue(cctx, connKey{}, cs))
	if a := cs.lc.RemoteAddr(); a != nil {
		c.remoteAddr = a.String()
	}
	stop := context.AfterFunc(ctx, func() { _ = c.rwc.Close() })
	s.watch.add(c)
	defer func() {
		stop()
		cancel(nil)
		stopWatch()
		s.watch.remove(c)
		c.mu.Lock()
		c.inactiveLocked()
		c.mu.Unlock()
		if !c.hijacked {
			_ = c.rwc.Close()
		}
		s.putReadBuf(c.in.buf)
	}()
	for first := true; ; first = false {
		n, perr, err := c.readHead(first)
		switch {
		case err != nil:
			s.countHeadErr(err, c.in.buffered() > 0)
			return // closed, timed out, or a read error: no response
		case perr != nil:
			c.reject(perr)
			return
		case n < 0:
			c.handoffH2(ctx)
			return
		}
		if !c.serveRequest() || ctx.Err() != nil || c.ctx.Err() != nil {
			return
		}
	}
}

// readHead reads the next request head and parses it into c.head. It
// returns -1 for the HTTP/2 connection preface (left unread), a
// protocolError to answer, or a read error (the connection just closes).
//
// Deadlines: the wait for a request's first byte is bounded by the idle
// timeout (the request headers timeout for the connection's first
// request, as net/http does); once a head has started arriving and is not
// complete in what was read, by the request headers timeout. A head that
// arrives in one read costs two deadline updates and no timer.
func (c *h1conn) readHead(first bool) (int, *protocolError, error) {
	s, in := c.srv, &c.in
	var deadline time.Time
	headerTimer := first || in.buffered() > 0
	switch {
	case in.buffered() > 0 && s.headerTimeout > 0:
		deadline = time.Now().Add(s.headerTimeout)
	case in.buffered() > 0:
	case first && s.headerTimeout > 0:
		deadline = time.Now().Add(s.headerTimeout)
	case s.idleTimeout > 0:
		deadline = time.Now().Add(s.idleTimeout)
	}
	// A deadline left by the previous request (the router unblocking a
	// body read) is replaced either way.
	if err := c.rwc.SetReadDeadline(deadline); err != nil {
		return 0, nil, err
	}
	if in.buffered() == 0 {
		if err := in.fillMore(); err != nil {
			return 0, nil, err
		}
	}
	scanned := 0
	for {
		if scanned == 0 {
			in.r += skipEmptyLines(in.buf[in.r:in.w])
		}
		end, next := findHeadEnd(in.buf[in.r:in.w], scanned)
		if end > 0 {
			if end > s.maxHead {
				return 0, &protocolError{status: nethttp.StatusRequestHeaderFieldsTooLarge, reason: "request head too large"}, nil
			}
			head := in.buf[in.r : in.r+end]
			if first && isPreface(head) {
				return -1, nil, nil
			}
			in.r += end
			if !deadline.IsZero() || headerTimer {
				c.dlMu.Lock()
				c.staleDeadline = true
				c.dlMu.Unlock()
			}
			if perr := parseHead(head, &c.head); perr != nil {
				return 0, perr, nil
			}
			return end, nil, nil
		}
		scanned = next
		if in.buffered() > s.maxHead {
			return 0, &protocolError{status: nethttp.StatusRequestHeaderFieldsTooLarge, reason: "request head too large"}, nil
		}
		if !headerTimer && s.headerTimeout > 0 {
			headerTimer = true
			if err := c.rwc.SetReadDeadline(time.Now().Add(s.headerTimeout)); err != nil {
				return 0, nil, err
			}
		}
		if in.r > 0 && in.w == len(in.buf) {
			in.compact()
		} else if in.w == len(in.buf) {
			in.grow(s.maxHead + 1)
		}
		if err := in.fillMore(); err != nil {
			return 0, nil, err
		}
	}
}

// count records a limit counter.
func (s *h1Server) count(st Stat) {
	if s.stats != nil {
		s.stats(st)
	}
}

// countHeadErr counts a wait for a request head that ended in a
// timeout: the request headers timeout once part of a head had arrived,
// else the idle timeout.
func (s *h1Server) countHeadErr(err error, partial bool) {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return
	}
	if partial {
		s.count(StatHeaderTimeout)
	} else {
		s.count(StatIdleTimeout)
	}
}

// isPreface reports whether head is the start of the HTTP/2 connection
// preface ("PRI * HTTP/2.0\r\n\r\n", then "SM\r\n\r\n").
func isPreface(head []byte) bool {
	return string(head) == "PRI * HTTP/2.0\r\n\r\n"
}

// handoffH2 gives the connection, with what was read of it, to net/http.
func (c *h1conn) handoffH2(ctx context.Context) {
	pending := bytes.Clone(c.in.buf[c.in.r:c.in.w])
	c.hijacked = true // the connection is net/http's now
	c.srv.handoff(ctx, &netConn{Conn: c.rwc, cs: c.cs, pending: pending}, c.cs)
}

// serveRequest serves the request in c.head and reports whether the
// connection can serve another.
func (c *h1conn) serveRequest() bool {
	h := &c.head
	r, perr := h.request(c.ctx)
	if perr != nil {
		c.reject(perr)
		return false
	}
	r.RemoteAddr = c.remoteAddr
	r.TLS = c.cs.tls
	var body *reqBody
	expect := false
	if h.expect != "" {
		if !asciiEqualFold(h.expect, "100-continue") {
			c.reject(&protocolError{status: nethttp.StatusExpectationFailed, reason: "unsupported expectation"})
			return false
		}
		expect = h.minor >= 1 && h.contentLength != 0
	}
	if h.contentLength != 0 {
		body = &reqBody{c: c, req: r, chunked: h.chunked, remain: h.contentLength, expect: expect}
		r.Body = body
		r.ContentLength = h.contentLength
		if h.chunked {
			r.TransferEncoding = []string{"chunked"}
		}
	} else {
		r.Body = nethttp.NoBody
	}
	c.w.reset(r, h, body, expect)
	c.watch(body == nil)
	aborted := c.runHandler(r)
	if c.hijacked {
		return false
	}
	keep := !aborted
	if !aborted {
		c.w.finish()
		keep = !c.w.closeAfter && c.w.werr == nil
	}
	c.endRequest()
	if body != nil && !body.finish() {
		keep = false
	}
	c.w.release()
	if !keep && (body != nil && !body.complete() || c.in.buffered() > 0) {
		// Unread input: half-close and wait for the client's FIN, so that
		// closing does not reset the connection under the response.
		c.linger()
	}
	if keep {
		// The handler has returned and the body is done with: the
		// request's storage is the next request's.
		c.spare.recycle()
	}
	return keep
}

// runHandler runs the handler; a panic (http.ErrAbortHandler: the stream
// reset) aborts the response and closes the connection, as net/http does.
func (c *h1conn) runHandler(r *nethttp.Request) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != nethttp.ErrAbortHandler {
				c.srv.log.Error("panic serving HTTP/1 request", "panic", p)
			}
		}
	}()
	c.srv.handler.ServeHTTP(&c.w, r)
	return false
}

// reject answers a request the codec refuses and closes the connection.
func (c *h1conn) reject(e *protocolError) {
	c.srv.count(StatProtocolError)
	text := strconv.Itoa(e.status) + " " + nethttp.StatusText(e.status)
	body := text + ": " + e.reason
	msg := "HTTP/1.1 " + text + "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body
	c.srv.log.Debug("rejected HTTP/1 request", "status", e.status, "reason", e.reason, "source", c.remoteAddr)
	_ = c.rwc.SetWriteDeadline(time.Now().Add(lingerTimeout))
	if _, err := io.WriteString(c.rwc, msg); err != nil {
		return
	}
	c.linger()
}

// linger half-closes the connection and reads until the client closes
// its side or lingerTimeout passes.
func (c *h1conn) linger() {
	if err := c.rwc.CloseWrite(); err != nil {
		return
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
	var scratch [1024]byte
	for {
		if _, err := c.rwc.Read(scratch[:]); err != nil {
			return
		}
	}
}

// The close watch. A request's context must end when the client goes
// away while the proxy waits for the upstream. Reading the connection in
// the background for every request (net/http's way) costs a goroutine and
// a read syscall per request; here the connection is only watched once a
// request has been in flight for closeCheck (at most twice that: the
// server's clock, closeWatch, ticks every closeCheck while requests are
// in flight; a request reads no clock and sets no timer) and its body is
// read: then a goroutine reads one byte. EOF or an error
// cancels the connection's context (DC); a byte (a pipelined request) is
// kept for the next read and ends the watch. endRequest stops the read
// with a past deadline.

// watch starts the watch for a new request; bodyEOF: it has no body.
func (c *h1conn) watch(bodyEOF bool) {
	c.mu.Lock()
	c.seq++
	c.active, c.delayed, c.bodyEOF = true, false, bodyEOF
	c.mu.Unlock()
	c.srv.watch.started(c.srv.closeCheck)
}

// tick is the server clock's check: a request in flight at the previous
// tick as well has run for at least closeCheck, and is watched.
func (c *h1conn) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.active || c.delayed {
		return
	}
	if c.seq != c.seenSeq {
		c.seenSeq = c.seq // started since the last tick
		return
	}
	c.delayed = true
	c.startReadLocked()
}

// bodyDone is called by the request body at its end.
func (c *h1conn) bodyDone() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bodyEOF = true
	c.startReadLocked()
}

func (c *h1conn) startReadLocked() {
	if !c.active || !c.delayed || !c.bodyEOF || c.reading || c.in.hasPeek {
		return
	}
	if c.in.buffered() > 0 {
		return // the client has pipelined the next request: it is there
	}
	// Cleared here, under mu, not in the watch: endRequest, which stops
	// the watch with a deadline in the past, sees it reading only after
	// this, so the clear can never undo that deadline. A failed clear (a
	// closed connection) shows in the watch's read.
	_ = c.clearStaleDeadline()
	c.reading = true
	c.readDone = make(chan struct{})
	go c.backgroundRead()
}

func (c *h1conn) backgroundRead() {
	var b [1]byte
	n, err := c.rwc.Read(b[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 1 {
		c.in.peek, c.in.hasPeek = b[0], true
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	if err != nil && !c.aborting && !timeout {
		c.cancel(errDownstreamClosed)
	}
	c.reading = false
	close(c.readDone)
}

// clearStaleDeadline clears a read deadline that is not the request's, if
// one is set, before the connection is read during the request.
func (c *h1conn) clearStaleDeadline() error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	if !c.staleDeadline {
		return nil
	}
	c.staleDeadline = false
	return c.rwc.SetReadDeadline(time.Time{})
}

// setReadDeadline sets the connection's read deadline for the request's
// handler (replacing a stale one, which must not be cleared after it).
func (c *h1conn) setReadDeadline(t time.Time) error {
	c.dlMu.Lock()
	defer c.dlMu.Unlock()
	c.staleDeadline = false
	return c.rwc.SetReadDeadline(t)
}

// inactiveLocked marks the request in flight, if any, ended, and counts it
// out of the server's clock. c.mu is held.
func (c *h1conn) inactiveLocked() {
	if c.active && c.srv != nil {
		c.srv.watch.ended()
	}
	c.active = false
}

// endRequest ends the watch; once it returns, nothing reads the
// connection but the serving goroutine.
func (c *h1conn) endRequest() {
	c.mu.Lock()
	c.inactiveLocked()
	reading := c.reading
	if reading {
		c.aborting = true
	}
	done := c.readDone
	c.mu.Unlock()
	if reading {
		c.dlMu.Lock()
		c.staleDeadline = true
		_ = c.rwc.SetReadDeadline(time.Unix(1, 0))
		c.dlMu.Unlock()
		<-done
		c.mu.Lock()
		c.aborting = false
		c.mu.Unlock()
	}
}

// inbuf is a connection's read buffer: buf[r:w] is read and not yet
// consumed. A byte read by the close watch waits in peek.
type inbuf struct {
	conn    net.Conn
	buf     []byte
	r, w    int
	peek    byte
	hasPeek bool
}

func (in *inbuf) buffered() int { return in.w - in.r }

func (in *inbuf) compact() {
	n := copy(in.buf, in.buf[in.r:in.w])
	in.r, in.w = 0, n
}

// grow enlarges buf for a head that does not fit, up to limit bytes.
func (in *inbuf) grow(limit int) {
	n := min(2*len(in.buf), limit)
	if n <= len(in.buf) {
		return
	}
	b := make([]byte, n)
	copy(b, in.buf[in.r:in.w])
	in.buf, in.r, in.w = b, 0, in.w-in.r
}

// fillMore reads at least one more byte into buf (making room at the end
// by compacting when buf is full and partly consumed).
func (in *inbuf) fillMore() error {
	if in.r == in.w {
		in.r, in.w = 0, 0
	} else if in.w == len(in.buf) {
		in.compact()
	}
	if in.hasPeek {
		in.buf[in.w] = in.peek
		in.w++
		in.hasPeek = false
		return nil
	}
	n, err := in.conn.Read(in.buf[in.w:])
	in.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// read copies buffered bytes to p, or reads: straight into p when p is at
// least as large as the buffer, else through the buffer.
func (in *inbuf) read(p []byte) (int, error) {
	if in.buffered() == 0 && !in.hasPeek {
		if len(p) >= len(in.buf) {
			return in.conn.Read(p)
		}
		if err := in.fillMore(); err != nil {
			return 0, err
		}
	} else if in.buffered() == 0 {
		_ = in.fillMore() // the peeked byte
	}
	n := copy(p, in.buf[in.r:in.w])
	in.r += n
	return n, nil
}

// pending returns a copy of the bytes read and not consumed.
func (in *inbuf) pending() []byte {
	b := make([]byte, 0, in.buffered()+1)
	b = append(b, in.buf[in.r:in.w]...)
	if in.hasPeek {
		b = append(b, in.peek)
	}
	return b
}

// netConn is a connection handed to net/http: reads replay what the
// HTTP/1 codec had read, and Close ends Serve.
type netConn struct {
	net.Conn
	cs      *connState
	pending []byte
}

func (n *netConn) Read(p []byte) (int, error) {
	if len(n.pending) > 0 {
		k := copy(p, n.pending)
		n.pending = n.pending[k:]
		return k, nil
	}
	return n.Conn.Read(p)
}

func (n *netConn) Close() error {
	err := n.Conn.Close()
	n.cs.finish()
	return err
}

// asciiEqualFold is strings.EqualFold for ASCII.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// dateCache formats the Date header once a second.
type dateCache struct {
	mu  sync.Mutex
	sec int64
	b   []byte
}

// appendDate appends the current Date header value to b.
func (d *dateCache) appendDate(b []byte, now time.Time) []byte {
	sec := now.Unix()
	d.mu.Lock()
	if d.sec != sec || d.b == nil {
		d.b = now.UTC().AppendFormat(d.b[:0], nethttp.TimeFormat)
		d.sec = sec
	}
	b = append(b, d.b...)
	d.mu.Unlock()
	return b
}
