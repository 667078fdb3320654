package http

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	nethttp "net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// testWait bounds what a test waits for.
const testWait = 10 * time.Second

// chopConn is a server-side connection whose reads return at most n bytes
// (0: no limit) and whose writes are counted.
type chopConn struct {
	net.Conn
	n      int
	writes atomic.Int64
}

func (c *chopConn) Read(p []byte) (int, error) {
	if c.n > 0 && len(p) > c.n {
		p = p[:c.n]
	}
	return c.Conn.Read(p)
}

func (c *chopConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

func (c *chopConn) CloseWrite() error { return listener.CloseWrite(c.Conn) }

// h1Harness serves one connection with an h1Server around handler.
type h1Harness struct {
	srv     *h1Server
	client  net.Conn
	server  *chopConn
	cs      *connState
	done    chan struct{}
	handoff atomic.Bool
}

func startH1(t *testing.T, chop int, handler nethttp.HandlerFunc, tune func(*h1Server)) *h1Harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := &h1Harness{done: make(chan struct{})}
	h.srv = &h1Server{
		handler:     handler,
		log:         slog.New(slog.DiscardHandler),
		maxHead:     64 << 10,
		idleTimeout: testWait,
		closeCheck:  defaultCloseCheck,
		handoff: func(ctx context.Context, c net.Conn, cs *connState) {
			h.handoff.Store(true)
			_ = c.Close()
		},
	}
	if tune != nil {
		tune(h.srv)
	}
	h.client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	h.server = &chopConn{Conn: sc, n: chop}
	h.cs = &connState{lc: &listener.Conn{Conn: h.server}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(h.done)
		h.srv.serve(ctx, h.cs)
	}()
	t.Cleanup(func() {
		cancel()
		h.client.Close()
		<-h.done
	})
	_ = h.client.SetDeadline(time.Now().Add(testWait))
	return h
}

// responses reads responses until the connection closes; closed reports
// a clean end (EOF or reset) after the last one.
func (h *h1Harness) responses(t *testing.T, method string) (out []*nethttp.Response, bodies []string, closed bool) {
	t.Helper()
	br := bufio.NewReader(h.client)
	for {
		resp, err := nethttp.ReadResponse(br, &nethttp.Request{Method: method})
		if err != nil {
			return out, bodies, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isConnReset(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", len(out)+1, err)
		}
		out = append(out, resp)
		bodies = append(bodies, string(b))
	}
}

func isConnReset(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// echoHandler answers 200 with "METHOD URI body", 400 when the body
// cannot be read.
type echoHandler struct {
	mu   sync.Mutex
	seen []string
}

func (e *echoHandler) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.Header().Set("Connection", "close")
		w.WriteHeader(nethttp.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.seen = append(e.seen, r.RequestURI)
	e.mu.Unlock()
	_, _ = io.WriteString(w, r.Method+" "+r.RequestURI+" "+string(b))
}

func (e *echoHandler) uris() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.seen...)
}

// TestH1Framing sends raw streams, read by the server in pieces of
// several sizes, and checks which requests are served and how the
// connection ends: the request smuggling rules (SECURITY B2–B4) as the
// codec applies them to heads and chunked bodies.
func TestH1Framing(t *testing.T) {
	const get = "GET /last HTTP/1.1\r\nHost: a\r\n\r\n"
	const host = "Host: a\r\n"
	cases := []struct {
		name   string
		stream string
		served []string // URIs the handler saw, in order
		codes  []int    // response statuses, in order
		reason string   // in the last response's body, or the connection's protocol error
		open   bool     // the connection stays open after the last response
	}{
		{"simple", get, []string{"/last"}, []int{200}, "", true},
		{"pipelined fixed and chunked", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc" +
			"POST /b HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10  \r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n" + get,
			[]string{"/a", "/b", "/last"}, []int{200, 200, 200}, "", true},
		{"bare LF heads", "GET /lf HTTP/1.1\nHost: a\n\n" + get, []string{"/lf", "/last"}, []int{200, 200}, "", true},
		{"leading CRLF", "\r\n\r\n" + get, []string{"/last"}, []int{200}, "", true},
		{"same CL twice", "POST /x HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx" + get, []string{"/x", "/last"}, []int{200, 200}, "", true},
		{"connection close", "GET /c HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n" + get, []string{"/c"}, []int{200}, "", false},
		{"HTTP/1.0 closes", "GET /old HTTP/1.0\r\n\r\n" + get, []string{"/old"}, []int{200}, "", false},
		{"HTTP/1.0 keep-alive", "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + get, []string{"/old", "/last"}, []int{200, 200}, "", true},
		{"upgrade not taken closes", "GET /ws HTTP/1.1\r\n" + host + "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + get, []string{"/ws"}, []int{200}, "", false},
		{"h2c upgrade is a plain request", "GET /h2c HTTP/1.1\r\n" + host + "Upgrade: h2c\r\n\r\n" +
			"POST /smuggled HTTP/1.1\r\n" + host + "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", []string{"/h2c"}, []int{200, 400}, "Content-Length with Transfer-Encoding", false},
		{"CL and TE", get + "POST /s HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get, []string{"/last"}, []int{200, 400}, "Content-Length with Transfer-Encoding", false},
		{"TE on HTTP/1.0", "POST /s HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", nil, []int{400}, "Transfer-Encoding on HTTP/1.0", false},
		{"TE not chunked", "POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", nil, []int{501}, "unsupported transfer encoding", false},
		{"two TE", "POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n", nil, []int{400}, "repeated Transfer-Encoding", false},
		{"obs-fold", "GET /s HTTP/1.1\r\n" + host + "X: a\r\n b\r\n\r\n", nil, []int{400}, "obs-fold header continuation", false},
		{"space before colon", "GET /s HTTP/1.1\r\nHost : a\r\n\r\n", nil, []int{400}, "invalid header name", false},
		{"no colon", "GET /s HTTP/1.1\r\nHost a\r\n\r\n", nil, []int{400}, "malformed header line", false},
		{"bare CR in value", "GET /s HTTP/1.1\r\n" + host + "X: a\rb\r\n\r\n", nil, []int{400}, "invalid header value", false},
		{"NUL in value", "GET /s HTTP/1.1\r\n" + host + "X: a\x00b\r\n\r\n", nil, []int{400}, "invalid header value", false},
		{"control in target", "GET /a\x01b HTTP/1.1\r\n" + host + "\r\n", nil, []int{400}, "invalid request target", false},
		{"no host", "GET /s HTTP/1.1\r\n\r\n", nil, []int{400}, "missing required Host header", false},
		{"two hosts", "GET /s HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", nil, []int{400}, "too many Host headers", false},
		{"HTTP/2.0 request", "GET /s HTTP/2.0\r\n" + host + "\r\n", nil, []int{505}, "unsupported HTTP version", false},
		{"bad version", "GET /s HTTP/1.x\r\n" + host + "\r\n", nil, []int{400}, "malformed HTTP version", false},
		{"CL not a number", "POST /s HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\n", nil, []int{400}, "invalid Content-Length", false},
		{"CL differ", "POST /s HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", nil, []int{400}, "differing Content-Length values", false},
		{"expectation not supported", "POST /s HTTP/1.1\r\n" + host + "Expect: teapot\r\nContent-Length: 1\r\n\r\nx", nil, []int{417}, "unsupported expectation", false},
		{"bad chunk size", "POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nZZ\r\n" + get, nil, []int{400}, "invalid chunk size", false},
		{"chunk size too long", "POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n00000000000000001\r\n" + get, nil, []int{400}, "invalid chunk size", false},
		{"chunk bare LF", "POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n" + get, nil, []int{400}, "chunk-size line ends with bare LF", false},
		{"chunk without CRLF", "POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1\r\nxy0\r\n\r\n" + get, nil, []int{400}, "chunk data not followed by CRLF", false},
		{"obs-fold in trailer", "POST /s HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n x\r\n\r\n" + get, nil, []int{400}, "obs-fold in trailers", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, chop := range []int{0, 1, 2, 3, 7} {
				e := &echoHandler{}
				h := startH1(t, chop, e.ServeHTTP, nil)
				if _, err := io.WriteString(h.client, tc.stream); err != nil {
					t.Fatal(err)
				}
				if !tc.open {
					_ = h.client.(*net.TCPConn).CloseWrite()
				}
				var resps []*nethttp.Response
				var bodies []string
				closed := false
				if tc.open {
					br := bufio.NewReader(h.client)
					for range tc.codes {
						resp, err := nethttp.ReadResponse(br, nil)
						if err != nil {
							t.Fatalf("reads of %d: response %d: %v", chop, len(resps)+1, err)
						}
						b, _ := io.ReadAll(resp.Body)
						resps, bodies = append(resps, resp), append(bodies, string(b))
					}
				} else {
					resps, bodies, closed = h.responses(t, "GET")
				}
				var codes []int
				for _, r := range resps {
					codes = append(codes, r.StatusCode)
				}
				if !equalInts(codes, tc.codes) {
					t.Fatalf("reads of %d: statuses %v (%q), want %v", chop, codes, bodies, tc.codes)
				}
				if got := e.uris(); !equalStrings(got, tc.served) {
					t.Errorf("reads of %d: served %q, want %q", chop, got, tc.served)
				}
				if !tc.open && !closed {
					t.Errorf("reads of %d: connection not closed", chop)
				}
				if tc.reason != "" {
					got := bodies[len(bodies)-1]
					if err := h.cs.protocolErr(); err != nil {
						got = err.Error()
					}
					if !strings.Contains(got, tc.reason) {
						t.Errorf("reads of %d: reason %q, want %q", chop, got, tc.reason)
					}
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestH1Preface hands a connection opening with the HTTP/2 preface to
// net/http (the handoff) without serving it as HTTP/1.
func TestH1Preface(t *testing.T) {
	e := &echoHandler{}
	h := startH1(t, 3, e.ServeHTTP, nil)
	_, _ = io.WriteString(h.client, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
	_, _ = io.ReadAll(h.client)
	if !h.handoff.Load() || len(e.uris()) != 0 {
		t.Errorf("handoff %v, served %q", h.handoff.Load(), e.uris())
	}
}

// TestH1HeadLimits checks max_request_headers_kb (431 and closed) and a
// head larger than the read buffer within it.
func TestH1HeadLimits(t *testing.T) {
	e := &echoHandler{}
	h := startH1(t, 0, e.ServeHTTP, func(s *h1Server) { s.maxHead = 16 << 10 })
	big := "GET /big HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 12<<10) + "\r\n\r\n"
	huge := "GET /huge HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 17<<10) + "\r\n\r\n"
	_, _ = io.WriteString(h.client, big+huge)
	resps, _, closed := h.responses(t, "GET")
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != nethttp.StatusRequestHeaderFieldsTooLarge || !closed {
		t.Fatalf("responses %v closed %v, want 200 then 431 and closed", statuses(resps), closed)
	}
}

func statuses(rs []*nethttp.Response) []int {
	var out []int
	for _, r := range rs {
		out = append(out, r.StatusCode)
	}
	return out
}

// TestH1Timeouts checks request_headers_timeout (a head that does not
// complete) and idle_timeout (no next request): the connection closes
// without a response.
func TestH1Timeouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stream string
		tune   func(*h1Server)
	}{
		{"headers", "GET /slow HTTP/1.1\r\nHost: a\r\n", func(s *h1Server) { s.headerTimeout = 100 * time.Millisecond }},
		{"headers after keep-alive", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /slow HTTP/1.1\r\n", func(s *h1Server) {
			s.headerTimeout = 100 * time.Millisecond
			s.idleTimeout = testWait
		}},
		{"idle", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", func(s *h1Server) { s.idleTimeout = 100 * time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &echoHandler{}
			h := startH1(t, 0, e.ServeHTTP, tc.tune)
			start := time.Now()
			_, _ = io.WriteString(h.client, tc.stream)
			_, _, closed := h.responses(t, "GET")
			if d := time.Since(start); !closed || d > 3*time.Second {
				t.Errorf("closed %v after %v, want closed after ~100ms", closed, d)
			}
		})
	}
}

// TestH1DownstreamClose checks the close watch: the context of a request
// in flight, its body read, ends with errDownstreamClosed when the client
// goes away.
func TestH1DownstreamClose(t *testing.T) {
	for _, req := range []string{
		"POST /wait HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
		"POST /wait HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		testDownstreamClose(t, req)
	}
}

// waitCause waits for r's context to end and returns its cause.
func waitCause(r *nethttp.Request) error {
	select {
	case <-r.Context().Done():
		return context.Cause(r.Context())
	case <-time.After(testWait):
		return errors.New("context not cancelled")
	}
}

func testDownstreamClose(t *testing.T, req string) {
	cause := make(chan error, 1)
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		cause <- waitCause(r)
	}, func(s *h1Server) { s.closeCheck = 10 * time.Millisecond })
	_, _ = io.WriteString(h.client, req)
	time.Sleep(50 * time.Millisecond) // let the watch start, then go away
	h.client.Close()
	if err := <-cause; !errors.Is(err, errDownstreamClosed) {
		t.Fatalf("%q: cause %v, want errDownstreamClosed", req, err)
	}
}

// TestH1HeadDeadlineNotTheRequests checks that the deadline bounding the
// wait for a head, left set once the head is in (it is cleared lazily),
// bounds nothing of the request: a body that arrives after it, and the
// close watch of a request that outlives it, on the first request (the
// request headers timeout) and on a kept-alive one (the idle timeout).
func TestH1HeadDeadlineNotTheRequests(t *testing.T) {
	const wait = 100 * time.Millisecond
	tune := func(s *h1Server) {
		s.headerTimeout, s.idleTimeout, s.closeCheck = wait, wait, 10*time.Millisecond
	}
	for _, first := range []bool{true, false} {
		prefix := ""
		if !first {
			prefix = "GET /quick HTTP/1.1\r\nHost: a\r\n\r\n"
		}
		t.Run(fmt.Sprintf("late body, first request %v", first), func(t *testing.T) {
			h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
				b, err := io.ReadAll(r.Body)
				if err != nil {
					w.WriteHeader(nethttp.StatusRequestTimeout)
					return
				}
				_, _ = w.Write(b)
			}, tune)
			_, _ = io.WriteString(h.client, prefix+"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
			time.Sleep(3 * wait) // past the head's deadline
			_, _ = io.WriteString(h.client, "hello")
			br := bufio.NewReader(h.client)
			if !first {
				if _, err := nethttp.ReadResponse(br, nil); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := nethttp.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "hello" {
				t.Fatalf("%d %q, want the body read after the head's deadline", resp.StatusCode, b)
			}
		})
		t.Run(fmt.Sprintf("close watch, first request %v", first), func(t *testing.T) {
			cause := make(chan error, 1)
			h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
				if r.URL.Path == "/quick" {
					return
				}
				cause <- waitCause(r)
			}, tune)
			_, _ = io.WriteString(h.client, prefix+"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
			time.Sleep(3 * wait) // the watch reads past the head's deadline
			h.client.Close()
			if err := <-cause; !errors.Is(err, errDownstreamClosed) {
				t.Fatalf("cause %v, want errDownstreamClosed", err)
			}
		})
	}
}

// TestH1WatchEndingWithItsRequest checks that a close watch starting
// just as its request ends (the watch is stopped by a deadline in the
// past, which its own clearing of a stale deadline must not undo) does
// not hold up the connection: requests that end around closeCheck, one
// after another on a kept-alive connection, are all answered.
func TestH1WatchEndingWithItsRequest(t *testing.T) {
	var n atomic.Int64
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		// Around the 1 ms closeCheck: some end before the watch, some
		// while it starts, some after.
		time.Sleep(time.Duration(n.Add(1)%5) * 300 * time.Microsecond)
		_, _ = io.WriteString(w, "ok")
	}, func(s *h1Server) {
		s.closeCheck = time.Millisecond
		s.headerTimeout, s.idleTimeout = time.Second, time.Second
	})
	br := bufio.NewReader(h.client)
	deadline := time.Now().Add(20 * time.Second)
	for i := range 400 {
		_ = h.client.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(h.client, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v (the connection is held up)", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if time.Now().After(deadline) {
			break
		}
	}
}

// TestH1WatchStopStays checks the close watch against stale deadlines
// and endRequest: a watch started on a connection whose head deadline is
// still set (and past) waits for the client, the stale deadline cleared;
// endRequest then stops it at once with its deadline in the past, which
// nothing clears again.
func TestH1WatchStopStays(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &h1conn{rwc: &listener.Conn{Conn: a}, cancel: func(error) {}}
	c.active, c.delayed, c.bodyEOF = true, true, true
	c.staleDeadline = true
	_ = c.rwc.SetReadDeadline(time.Unix(1, 0))

	c.mu.Lock()
	c.startReadLocked()
	done := c.readDone
	c.mu.Unlock()
	select {
	case <-done:
		t.Fatal("the watch's read returned at once: the stale deadline was not cleared")
	case <-time.After(50 * time.Millisecond):
	}

	stopped := make(chan struct{})
	go func() {
		c.endRequest()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(testWait):
		_, _ = b.Write([]byte("x")) // let the blocked read, and the test, end
		t.Fatal("endRequest blocks: the watch's stop deadline was cleared")
	}
}

// TestH1CloseWatchClockIdle checks that the close watches' clock stops
// once no request is in flight: a server between requests leaves no
// timer pending (each would bound the poller's waits and wake an idle
// proxy when it fires).
func TestH1CloseWatchClockIdle(t *testing.T) {
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.WriteString(w, "ok")
	}, func(s *h1Server) { s.closeCheck = 5 * time.Millisecond })
	br := bufio.NewReader(h.client)
	for range 3 {
		_, _ = io.WriteString(h.client, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	deadline := time.Now().Add(testWait)
	for h.srv.watch.running.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the close watches' clock still runs with no request in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.srv.watch.inflight.Load(); n != 0 {
		t.Fatalf("%d requests counted in flight after their responses", n)
	}
}

// TestH1DownstreamCloseAfterQuickRequest checks the close watch of a
// request that follows a quick one on the connection: the server's
// clock, set by the first request and still pending when the second
// starts, runs on for the second, which is watched and sees the client
// go.
func TestH1DownstreamCloseAfterQuickRequest(t *testing.T) {
	cause := make(chan error, 1)
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.URL.Path == "/quick" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		cause <- waitCause(r)
	}, func(s *h1Server) { s.closeCheck = 60 * time.Millisecond })
	_, _ = io.WriteString(h.client, "GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(h.client)
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	time.Sleep(30 * time.Millisecond) // the timer is still pending
	_, _ = io.WriteString(h.client, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(150 * time.Millisecond) // past the second request's closeCheck
	h.client.Close()
	if err := <-cause; !errors.Is(err, errDownstreamClosed) {
		t.Fatalf("cause %v, want errDownstreamClosed", err)
	}
}

// TestH1PipelinedWhileWatched checks that a request pipelined while the
// previous one is watched is served, not taken as a close.
func TestH1PipelinedWhileWatched(t *testing.T) {
	var n atomic.Int64
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if n.Add(1) == 1 {
			time.Sleep(100 * time.Millisecond) // watched from 10ms on
		}
		if r.Context().Err() != nil {
			w.WriteHeader(499)
			return
		}
		_, _ = io.WriteString(w, r.RequestURI)
	}, func(s *h1Server) { s.closeCheck = 10 * time.Millisecond })
	_, _ = io.WriteString(h.client, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	_, _ = io.WriteString(h.client, "GET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	resps, bodies, _ := h.responses(t, "GET")
	if !equalInts(statuses(resps), []int{200, 200}) || !equalStrings(bodies, []string{"/1", "/2"}) {
		t.Fatalf("responses %v %q", statuses(resps), bodies)
	}
}

// TestH1Hijack checks that a hijacked connection's reader replays what
// the codec had read past the request head.
func TestH1Hijack(t *testing.T) {
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		conn, brw, err := nethttp.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		b := make([]byte, 5)
		if _, err := io.ReadFull(brw, b); err != nil {
			t.Error(err)
			return
		}
		_, _ = conn.Write(b)
	}, nil)
	_, _ = io.WriteString(h.client, "GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello")
	got, _ := io.ReadAll(h.client)
	if !strings.HasSuffix(string(got), "\r\n\r\nhello") || !strings.HasPrefix(string(got), "HTTP/1.1 101") {
		t.Fatalf("got %q", got)
	}
}

// TestH1RequestStorageReused: the requests of a keep-alive connection
// take turns using one *http.Request, URL and header map (headSpare), and
// nothing of a request shows in the next: not its headers, its URL or its
// fields, and the connection's context is every request's.
func TestH1RequestStorageReused(t *testing.T) {
	type seen struct {
		req    *nethttp.Request
		url    string
		header nethttp.Header
		conn   bool
		length int64
	}
	var mu sync.Mutex
	var got []seen
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, hasConn := r.Context().Value(connKey{}).(*connState)
		mu.Lock()
		got = append(got, seen{req: r, url: r.URL.String(), header: r.Header.Clone(), conn: hasConn, length: r.ContentLength})
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}, nil)
	var many strings.Builder
	for i := range spareFields + 4 {
		fmt.Fprintf(&many, "X-Many-%d: %d\r\n", i, i)
	}
	reqs := "POST /a?x=1 HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nX-Shared: a\r\nContent-Length: 3\r\n\r\nabc" +
		"GET /b HTTP/1.1\r\nHost: a\r\nX-Two: 2\r\n\r\n" +
		"GET /c HTTP/1.1\r\nHost: a\r\n" + many.String() + "\r\n" +
		"GET /d HTTP/1.1\r\nHost: a\r\nX-Four: 4\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(h.client, reqs); err != nil {
		t.Fatal(err)
	}
	if resps, _, closed := h.responses(t, "GET"); len(resps) != 4 || !closed {
		t.Fatalf("%d responses, closed %v", len(resps), closed)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []struct {
		url    string
		keys   []string
		length int64
	}{
		{"/a?x=1", []string{"Content-Length", "X-One", "X-Shared"}, 3},
		{"/b", []string{"X-Two"}, 0},
		{"/c", nil, 0},
		{"/d", []string{"Connection", "X-Four"}, 0},
	}
	for i, w := range want {
		g := got[i]
		keys := slices.Sorted(maps.Keys(g.header))
		if w.keys == nil {
			if len(keys) != spareFields+4 {
				t.Errorf("request %d: %d header fields, want %d", i+1, len(keys), spareFields+4)
			}
		} else if !slices.Equal(keys, w.keys) {
			t.Errorf("request %d: header fields %v, want %v", i+1, keys, w.keys)
		}
		if g.url != w.url || !g.conn || g.length != w.length {
			t.Errorf("request %d: url %q (want %q), connection state %v, length %d (want %d)", i+1, g.url, w.url, g.conn, g.length, w.length)
		}
	}
	if got[1].req != got[0].req || got[2].req != got[0].req {
		t.Error("the connection's requests did not reuse its *http.Request")
	}
}
