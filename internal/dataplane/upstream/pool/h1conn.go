package pool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits of the HTTP/1.1 client.
const (
	// maxHeadBytes bounds a response head, the 1xx heads before it
	// included, and a chunked body's trailers (Envoy's
	// max_response_headers_kb defaults to 60 KiB).
	maxHeadBytes = 64 << 10
	// maxHeaderFields bounds the fields of one head (Envoy's
	// max_headers_count default).
	maxHeaderFields = 100
	// smallBody is the largest request body of known length that is read
	// in full and sent with the head in one write; larger and streaming
	// bodies are written by a goroutine while the response is read.
	smallBody = 16 << 10
	// writeWait is how long the end of a response waits for the request
	// body writer before giving up the connection (net/http waits 50 ms).
	writeWait = 50 * time.Millisecond
	// readBufferSize is the connection's read buffer.
	readBufferSize = 8 << 10
	// bodyBufferSize is the body writer's copy buffer.
	bodyBufferSize = 32 << 10
)

var (
	// ErrMalformedResponse is wrapped by errors of HTTP/1.1 responses that
	// break the protocol (bad status line, header, framing or chunking, or
	// a head over the size limit). The pool fails such requests as Reset
	// (UR) and closes the connection.
	ErrMalformedResponse = errors.New("malformed HTTP/1.1 response")
	// ErrInvalidRequest is wrapped by errors of requests that cannot be
	// written as HTTP/1.1 (a control byte in a field, a bad method,
	// target or Host). Nothing is written, the connection stays usable,
	// and the host is not blamed: the request fails as Reset.
	ErrInvalidRequest = errors.New("invalid HTTP/1.1 request")

	errBusy         = errors.New("connection busy")
	errNotReserved  = errors.New("request on a connection not reserved")
	errClosed       = errors.New("connection closed")
	errStale        = errors.New("connection closed by peer while idle")
	errNotReusable  = errors.New("connection not reusable")
	errBodyClosed   = errors.New("response body closed before its end")
	errReadOnClosed = errors.New("read on closed response body")
)

// h1State is where an HTTP/1.1 connection is in its request cycle.
type h1State uint8

const (
	h1Idle     h1State = iota // may be reserved
	h1Reserved                // reserved; RoundTrip comes next
	h1Active                  // a request is in flight (until its body ends)
	h1Upgraded                // 101: the connection belongs to the caller
)

// h1Conn is our HTTP/1.1 client connection: one request at a time, run in
// the caller's goroutine.
//
//	Reserve ──► RoundTrip: head (+ small body) in one write
//	              [larger or streaming body: a writer goroutine]
//	            read heads (1xx skipped) ──► 101: upgraded (caller owns it)
//	            body: Content-Length / chunked (+ trailers) / until close / none
//	body EOF ──► finish: reusable (keep-alive both ways, body fully
//	             written within writeWait, no abort) ? idle + hook : close
//	ctx ends ──► abort: the connection closes, blocked I/O fails
//	             (ctx watched by its Watch when it is a watcher, else
//	             context.AfterFunc)
//
// The request in flight (req* fields) belongs to the goroutine running
// it; mu guards the state shared with Close, the abort and the pool.
type h1Conn struct {
	nc   net.Conn // the pool's *netConn
	br   *bufio.Reader
	bufs *sync.Pool // *[]byte body copy buffers, shared by the pool
	// resps are released responses (*h1Response), shared by the pool.
	resps *sync.Pool
	// wbuf and hbuf are reused by each request: the request head and the
	// response head being read.
	wbuf  []byte
	hbuf  []byte
	abort func() // c.onAbort, allocated once
	stale func() bool

	// The request in flight.
	reqStop      func() bool // stops the context watch (AfterFunc); nil without one
	reqWatch     watcher     // the context watching, when it is a watcher
	reqWatchID   int
	reqWrite     chan error // the body writer's result; nil without one
	reqKeepAlive bool
	reqMethod    string

	mu    sync.Mutex
	state h1State
	used  bool // has carried a request
	err   error
	// ctx is the request's context while it is in flight, for the abort
	// to name its cause.
	ctx  context.Context
	hook func()
}

func neverStale() bool { return false }

func newH1Conn(nc net.Conn, raw net.Conn, bufs, resps *sync.Pool) *h1Conn {
	c := &h1Conn{nc: nc, br: bufio.NewReaderSize(nc, readBufferSize), bufs: bufs, resps: resps}
	c.abort = c.onAbort
	c.stale = staleCheck(raw)
	return c
}

// SetStateHook sets the function called when the connection becomes
// available again or unusable.
func (c *h1Conn) SetStateHook(f func()) {
	c.mu.Lock()
	c.hook = f
	c.mu.Unlock()
}

// Available is 1 when the connection can take a request, else 0.
func (c *h1Conn) Available() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil && c.state == h1Idle {
		return 1
	}
	return 0
}

// Err is why the connection is unusable, nil while it is usable.
func (c *h1Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection, failing a request in flight.
func (c *h1Conn) Close() error {
	c.closeWith(errClosed)
	return nil
}

// Reserve claims the connection for one request. A connection that has
// served requests is first checked for a close (or unsolicited bytes)
// from the peer while it was idle, without blocking: such a connection is
// closed and Reserve fails.
func (c *h1Conn) Reserve() error {
	c.mu.Lock()
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return err
	case c.state != h1Idle:
		c.mu.Unlock()
		return errBusy
	}
	c.state = h1Reserved
	used := c.used
	c.used = true
	c.mu.Unlock()
	if used && (c.br.Buffered() > 0 || c.stale()) {
		c.closeWith(errStale)
		return errStale
	}
	return nil
}

// closeWith makes the connection unusable for err and closes it; the
// first call wins.
func (c *h1Conn) closeWith(err error) {
	c.mu.Lock()
	first := c.err == nil
	if first {
		c.err = err
	}
	hook := c.hook
	c.mu.Unlock()
	if first {
		_ = c.nc.Close()
		if hook != nil {
			hook()
		}
	}
}

// watcher is a context that runs a function when it ends without the
// allocations of context.AfterFunc (the contexts the HTTP connection
// manager gives requests, internal/dataplane/http: an HTTP/1
// connection's, or a stream's own). Watch reports false when it does not
// take f (the context has ended, or it has no room), and the caller uses
// context.AfterFunc; Unwatch removes f and reports whether f had not
// started (and never will), as context.AfterFunc's stop does.
type watcher interface {
	Watch(f func()) (id int, ok bool)
	Unwatch(id int) bool
}

// stopWatch stops watching the request's context and reports whether the
// abort had not run (true without a watch).
func (c *h1Conn) stopWatch() bool {
	notRun := true
	if c.reqStop != nil {
		notRun = c.reqStop()
		c.reqStop = nil
	}
	if c.reqWatch != nil {
		notRun = c.reqWatch.Unwatch(c.reqWatchID)
		c.reqWatch = nil
	}
	return notRun
}

// onAbort runs when the context of the request in flight ends.
func (c *h1Conn) onAbort() {
	c.mu.Lock()
	ctx := c.ctx
	c.mu.Unlock()
	err := context.Canceled
	if ctx != nil {
		err = context.Cause(ctx)
	}
	c.closeWith(err)
}

// RoundTrip sends req, reserved before, and returns its response. The
// response body must be read to EOF or closed; the connection is reused
// only after a complete response. ctx aborts the request (closing the
// connection) until the body ends.
func (c *h1Conn) RoundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.state != h1Reserved || c.err != nil {
		err := c.err
		c.mu.Unlock()
		if err == nil {
			err = errNotReserved
		}
		return nil, err
	}
	c.state = h1Active
	c.ctx = ctx
	c.mu.Unlock()
	c.reqMethod = req.Method
	c.reqKeepAlive = !req.Close && !hasToken(req.Header["Connection"], "close")
	if w, ok := ctx.(watcher); ok {
		if id, ok := w.Watch(c.abort); ok {
			c.reqWatch, c.reqWatchID = w, id
		}
	}
	if c.reqWatch == nil && ctx.Done() != nil {
		c.reqStop = context.AfterFunc(ctx, c.abort)
	}
	resp, err := c.roundTrip(ctx, req)
	if errors.Is(err, ErrInvalidRequest) {
		c.finish(true)
		return nil, err
	}
	if err != nil {
		if c.reqWrite != nil {
			select {
			case werr := <-c.reqWrite:
				c.reqWrite = nil
				var be *bodyReadError
				if errors.As(werr, &be) {
					err = werr // the request body failed first
				}
			default:
			}
		}
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		c.closeWith(err)
		c.finish(false)
	}
	return resp, err
}

func (c *h1Conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	cl := req.ContentLength
	switch {
	case body == nil:
		cl = 0
	case cl == 0:
		cl = -1 // a body of unknown length (net/http would probe it)
	}
	head, err := appendRequestHead(c.wbuf[:0], req, cl)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if 0 < cl && cl <= smallBody {
		// The whole body goes with the head.
		n := len(head)
		head = grow(head, int(cl))
		if _, err := io.ReadFull(body, head[n:]); err != nil {
			c.wbuf = head[:0]
			return nil, requestBodyError(cl, err)
		}
		if err := expectEOF(body); err != nil {
			c.wbuf = head[:0]
			return nil, err
		}
		body = nil
	}
	c.wbuf = head[:0]
	if _, err := c.nc.Write(head); err != nil {
		return nil, fmt.Errorf("writing request: %w", err)
	}
	if body != nil {
		c.reqWrite = make(chan error, 1)
		go c.writeBody(body, cl, c.reqWrite)
	}
	return c.readResponse(ctx, req)
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

// requestBodyError explains a request body that ended early or failed.
func requestBodyError(cl int64, err error) error {
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return fmt.Errorf("request body shorter than its Content-Length %d", cl)
	}
	return fmt.Errorf("reading request body: %w", err)
}

// expectEOF checks that body has nothing beyond its Content-Length (and
// lets it see its end).
func expectEOF(body io.Reader) error {
	var one [1]byte
	for {
		n, err := body.Read(one[:])
		switch {
		case n > 0:
			return errors.New("request body longer than its Content-Length")
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("reading request body: %w", err)
		}
	}
}

// writeBody writes a request body that did not go with the head: cl
// bytes, or chunked when cl < 0. A failure to read the body closes the
// connection (the upstream has a partial request); a failure to write
// does not, so that an early response can still be read.
func (c *h1Conn) writeBody(body io.Reader, cl int64, done chan<- error) {
	bp := c.bufs.Get().(*[]byte)
	buf := *bp
	var err error
	if cl >= 0 {
		err = c.writeLength(body, cl, buf)
	} else {
		err = c.writeChunked(body, buf)
	}
	c.bufs.Put(bp)
	done <- err
}

type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

func (c *h1Conn) failBody(err error) error {
	err = &bodyReadError{err}
	c.closeWith(err)
	return err
}

func (c *h1Conn) writeLength(body io.Reader, cl int64, buf []byte) error {
	for left := cl; left > 0; {
		b := buf
		if int64(len(b)) > left {
			b = b[:left]
		}
		n, rerr := body.Read(b)
		if n > 0 {
			left -= int64(n)
			if _, err := c.nc.Write(b[:n]); err != nil {
				return err
			}
		}
		switch {
		case rerr == io.EOF && left > 0:
			return c.failBody(requestBodyError(cl, rerr))
		case rerr != nil && rerr != io.EOF:
			return c.failBody(requestBodyError(cl, rerr))
		}
	}
	if err := expectEOF(body); err != nil {
		return c.failBody(err)
	}
	return nil
}

// writeChunked writes body in chunks, one write each: the size line and
// the trailing CRLF around the data in buf.
func (c *h1Conn) writeChunked(body io.Reader, buf []byte) error {
	const pre = 18 // 16 hex digits and CRLF
	data := buf[pre : len(buf)-2]
	for {
		n, rerr := body.Read(data)
		if n > 0 {
			i := pre - 2
			buf[i], buf[i+1] = '\r', '\n'
			for v := n; ; v >>= 4 {
				i--
				buf[i] = "0123456789abcdef"[v&0xf]
				if v < 16 {
					break
				}
			}
			end := pre + n
			buf[end], buf[end+1] = '\r', '\n'
			if _, err := c.nc.Write(buf[i : end+2]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			_, err := c.nc.Write([]byte("0\r\n\r\n"))
			return err
		}
		if rerr != nil {
			return c.failBody(fmt.Errorf("reading request body: %w", rerr))
		}
	}
}

// finish ends the request in flight: the connection goes back to idle
// when reuse holds and nothing else forbids it, else it closes.
func (c *h1Conn) finish(reuse bool) {
	if !c.stopWatch() {
		reuse = false // the abort ran: the connection is closing
	}
	if c.reqWrite != nil {
		// The writer's channel is buffered: a writer left behind (the
		// connection closes) still ends.
		if reuse && !c.waitWrite() {
			reuse = false
		}
		c.reqWrite = nil
	}
	if !c.reqKeepAlive {
		reuse = false
	}
	c.mu.Lock()
	c.ctx = nil
	if !reuse || c.err != nil {
		c.mu.Unlock()
		c.closeWith(errNotReusable)
		return
	}
	c.state = h1Idle
	hook := c.hook
	c.mu.Unlock()
	if hook != nil {
		hook()
	}
}

// waitWrite waits up to writeWait for the body writer and reports whether
// it wrote the whole body.
func (c *h1Conn) waitWrite() bool {
	select {
	case err := <-c.reqWrite:
		return err == nil
	default:
	}
	t := time.NewTimer(writeWait)
	defer t.Stop()
	select {
	case err := <-c.reqWrite:
		return err == nil
	case <-t.C:
		return false
	}
}

// upgraded marks the connection as the caller's (101 Switching
// Protocols): it is never reused and closes with the caller's Close.
func (c *h1Conn) upgraded() {
	c.stopWatch()
	c.mu.Lock()
	c.state = h1Upgraded
	c.ctx = nil
	c.mu.Unlock()
}

// upgradeBody is a 101 response's body: the raw connection, the bytes
// already buffered first.
type h1Upgrade struct{ c *h1Conn }

func (u h1Upgrade) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u h1Upgrade) Write(p []byte) (int, error) { return u.c.nc.Write(p) }
func (u h1Upgrade) Close() error                { u.c.closeWith(errClosed); return nil }
