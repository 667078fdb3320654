package pool_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// rawServer is a loopback TCP server whose connections are served by a
// script: the tests' way to send what net/http's server never would.
type rawServer struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func newRawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.wg.Go(func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

// readReq reads one request with net/http's parser (which also checks our
// framing) and its body.
func readReq(br *bufio.Reader) (*http.Request, []byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// replies serves every request on a connection with the next canned
// reply; after the last one the connection closes.
func replies(rs ...string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for _, r := range rs {
			if _, _, err := readReq(br); err != nil {
				return
			}
			if _, err := io.WriteString(c, r); err != nil {
				return
			}
		}
	}
}

func get(t *testing.T, p *pool.Pool, ctx context.Context, path string) (*http.Response, pool.Info, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://backend"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p.RoundTrip(ctx, req, false)
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

func wantKind(t *testing.T, err error, kind pool.Kind) {
	t.Helper()
	var pe *pool.Error
	if !errors.As(err, &pe) || pe.Kind != kind {
		t.Fatalf("error %v, want kind %v", err, kind)
	}
}

func h1Pool(t *testing.T, addr string) *pool.Pool {
	return newPool(t, addr, circuit.DefaultThresholds(), pool.HTTP1, nil)
}

// TestH1NetHTTPServer runs requests of every body shape against net/http's
// server on one keep-alive connection.
func TestH1NetHTTPServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("server reading body: %v", err)
		}
		switch r.URL.Path {
		case "/trailers":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "part")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Sum", "42")
			return
		case "/204":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/304":
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Te", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-Ua", strings.Join(r.Header["User-Agent"], ","))
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Uri", r.RequestURI)
		fmt.Fprintf(w, "%d:%x", len(body), sumBytes(body))
	}))
	defer srv.Close()
	p := h1Pool(t, srv.Listener.Addr().String())
	big := bytes.Repeat([]byte("0123456789abcdef"), 8<<10) // 128 KiB: the writer goroutine
	cases := []struct {
		name     string
		method   string
		path     string
		body     []byte
		length   int64 // ContentLength to send; -1: unknown (chunked)
		want     string
		wantTE   string
		wantCode int
	}{
		{name: "get", method: "GET", path: "/a%2Fb?x=1&y", want: "0:0"},
		{name: "small post", method: "POST", path: "/", body: []byte("hello"), length: 5, want: fmt.Sprintf("5:%x", sumBytes([]byte("hello")))},
		{name: "empty post", method: "POST", path: "/", want: "0:0"},
		{name: "large post", method: "PUT", path: "/", body: big, length: int64(len(big)), want: fmt.Sprintf("%d:%x", len(big), sumBytes(big))},
		{name: "chunked post", method: "POST", path: "/", body: big, length: -1, want: fmt.Sprintf("%d:%x", len(big), sumBytes(big)), wantTE: "chunked"},
		{name: "head", method: "HEAD", path: "/", want: ""},
		{name: "204", method: "GET", path: "/204", wantCode: 204},
		{name: "304", method: "GET", path: "/304", wantCode: 304},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, "http://backend"+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = "svc.example:8080"
			req.URL.RawPath = strings.SplitN(tc.path, "?", 2)[0]
			if tc.body != nil || tc.length != 0 {
				req.Body = io.NopCloser(bytes.NewReader(tc.body))
				req.ContentLength = tc.length
			}
			resp, info, err := p.RoundTrip(context.Background(), req, false)
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && !info.Reused {
				t.Error("connection not reused")
			}
			code := tc.wantCode
			if code == 0 {
				code = 200
			}
			if resp.StatusCode != code {
				t.Fatalf("status %d, want %d", resp.StatusCode, code)
			}
			if got := readAll(t, resp); got != tc.want {
				t.Errorf("body %q, want %q", got, tc.want)
			}
			if code != 200 {
				return
			}
			if got := resp.Header.Get("X-Method"); got != tc.method {
				t.Errorf("method %q", got)
			}
			if got := resp.Header.Get("X-Te"); got != tc.wantTE {
				t.Errorf("request Transfer-Encoding %q, want %q", got, tc.wantTE)
			}
			if got := resp.Header["X-Ua"]; len(got) != 1 || got[0] != "" {
				t.Errorf("User-Agent %q sent, want none", got)
			}
			if got := resp.Header.Get("X-Host"); got != "svc.example:8080" {
				t.Errorf("Host %q", got)
			}
			if got, want := resp.Header.Get("X-Uri"), tc.path; got != want {
				t.Errorf("request target %q, want %q", got, want)
			}
		})
	}
	t.Run("trailers", func(t *testing.T) {
		resp, _, err := get(t, p, context.Background(), "/trailers")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := resp.Trailer["X-Sum"]; !ok {
			t.Errorf("trailer not declared before the body: %v", resp.Trailer)
		}
		if got := readAll(t, resp); got != "part" {
			t.Errorf("body %q", got)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "42" {
			t.Errorf("trailer %q, want 42", got)
		}
	})
	if st := p.Stats(); st.ConnectionsTotal != 1 || st.Idle != 1 {
		t.Errorf("stats %+v, want one idle connection for everything", st)
	}
}

func sumBytes(b []byte) uint32 {
	var s uint32
	for _, c := range b {
		s = s*31 + uint32(c)
	}
	return s
}

// TestH1Responses: what raw servers send, and what comes out.
func TestH1Responses(t *testing.T) {
	cases := []struct {
		name    string
		reply   string
		body    string
		trailer http.Header
		header  http.Header
		reused  bool // a second request reuses the connection
		closes  bool // the server closes after the reply
	}{
		{name: "length", reply: "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nX-Multi: a\r\nx-multi: b\r\nContent-Length: 2\r\n\r\nok",
			body: "ok", header: http.Header{"Content-Type": {"text/plain"}, "X-Multi": {"a", "b"}, "Content-Length": {"2"}}, reused: true},
		{name: "chunked with trailers", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nGrpc-Status: 0\r\nX-Extra: 1\r\n\r\n",
			body: "hello world", trailer: http.Header{"Grpc-Status": {"0"}, "X-Extra": {"1"}}, reused: true},
		{name: "chunked", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", body: "abc", reused: true},
		{name: "informational", reply: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
			body: "x", header: http.Header{"Content-Length": {"1"}}, reused: true},
		{name: "until close", reply: "HTTP/1.1 200 OK\r\n\r\nuntil the end", body: "until the end", closes: true},
		{name: "connection close", reply: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", body: "ok"},
		{name: "http/1.0", reply: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", body: "ok"},
		{name: "http/1.0 keep-alive", reply: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", body: "ok", reused: true},
		{name: "no reason", reply: "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", reused: true},
		{name: "bare LF", reply: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", body: "ok", reused: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := replies(tc.reply, tc.reply)
			if tc.closes {
				script = replies(tc.reply)
			}
			s := newRawServer(t, script)
			p := h1Pool(t, s.addr())
			for i := range 2 {
				resp, info, err := get(t, p, context.Background(), "/")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got := readAll(t, resp); got != tc.body {
					t.Errorf("body %q, want %q", got, tc.body)
				}
				for k, v := range tc.header {
					if got := resp.Header[k]; !equal(got, v) {
						t.Errorf("header %s: %q, want %q", k, got, v)
					}
				}
				for k, v := range tc.trailer {
					if got := resp.Trailer[k]; !equal(got, v) {
						t.Errorf("trailer %s: %q, want %q", k, got, v)
					}
				}
				if i == 1 && info.Reused != tc.reused {
					t.Errorf("second request reused %v, want %v", info.Reused, tc.reused)
				}
			}
			if want := map[bool]int64{true: 1, false: 2}[tc.reused]; s.accepted.Load() != want {
				t.Errorf("%d connections, want %d", s.accepted.Load(), want)
			}
		})
	}
}

func equal(a, b []string) bool {
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

// TestH1Malformed: responses that break the protocol fail as resets (UR)
// naming a malformed response, before or during the body; a connection
// that ends early is a connection termination (UC).
func TestH1Malformed(t *testing.T) {
	long := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Filler: "+strings.Repeat("y", 1000)+"\r\n", 70) + "\r\n"
	cases := []struct {
		name   string
		reply  string
		inBody bool // the error comes reading the body
		kind   pool.Kind
	}{
		{name: "garbage", reply: "SSH-2.0-OpenSSH\r\n\r\n", kind: pool.Reset},
		{name: "http/2 preface", reply: "HTTP/2.0 200 OK\r\n\r\n", kind: pool.Reset},
		{name: "bad status", reply: "HTTP/1.1 2x0 OK\r\n\r\n", kind: pool.Reset},
		{name: "space before colon", reply: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", kind: pool.Reset},
		{name: "folded", reply: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", kind: pool.Reset},
		{name: "nul in value", reply: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", kind: pool.Reset},
		{name: "cr in value", reply: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", kind: pool.Reset},
		{name: "te and cl", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", kind: pool.Reset},
		{name: "gzip te", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", kind: pool.Reset},
		{name: "conflicting lengths", reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", kind: pool.Reset},
		{name: "signed length", reply: "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", kind: pool.Reset},
		{name: "head too large", reply: long, kind: pool.Reset},
		{name: "bad chunk size", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", inBody: true, kind: pool.Reset},
		{name: "chunk without crlf", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX3\r\nabc\r\n0\r\n\r\n", inBody: true, kind: pool.Reset},
		{name: "closed before response", reply: "", kind: pool.ConnectionTermination},
		{name: "closed in head", reply: "HTTP/1.1 200 OK\r\nContent-Le", kind: pool.ConnectionTermination},
		{name: "short body", reply: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", inBody: true, kind: pool.ConnectionTermination},
		{name: "short chunk", reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nshort", inBody: true, kind: pool.ConnectionTermination},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, replies(tc.reply))
			p := h1Pool(t, s.addr())
			resp, _, err := get(t, p, context.Background(), "/")
			if tc.inBody {
				if err != nil {
					t.Fatalf("head: %v", err)
				}
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatal("no error")
			}
			wantKind(t, err, tc.kind)
			if tc.kind == pool.Reset && !errors.Is(err, pool.ErrMalformedResponse) {
				t.Errorf("error %v does not wrap ErrMalformedResponse", err)
			}
			waitEmpty(t, p)
		})
	}
}

// waitEmpty waits until p has no connection left.
func waitEmpty(t *testing.T, p *pool.Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !p.Empty() {
		if time.Now().After(deadline) {
			t.Fatalf("connection still pooled: %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestH1HeaderInjection: a request that would split the request stream is
// refused before anything is written.
func TestH1HeaderInjection(t *testing.T) {
	var got atomic.Int64
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		n, _ := io.Copy(io.Discard, br)
		got.Add(n)
	})
	p := h1Pool(t, s.addr())
	cases := []struct {
		name string
		edit func(r *http.Request)
	}{
		{"crlf in value", func(r *http.Request) { r.Header.Set("X-A", "1\r\nX-Injected: 1") }},
		{"lf in value", func(r *http.Request) { r.Header["X-A"] = []string{"1\nGET / HTTP/1.1"} }},
		{"nul in value", func(r *http.Request) { r.Header["X-A"] = []string{"a\x00b"} }},
		{"crlf in name", func(r *http.Request) { r.Header["X-A\r\nX-B"] = []string{"1"} }},
		{"colon in name", func(r *http.Request) { r.Header["X-A: b"] = []string{"1"} }},
		{"crlf in host", func(r *http.Request) { r.Host = "a\r\nX-B: 1" }},
		{"space in method", func(r *http.Request) { r.Method = "GET / HTTP/1.1\r\n" }},
		{"space in target", func(r *http.Request) { r.URL.RawQuery = "a b" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "http://backend/", nil)
			tc.edit(req)
			_, _, err := p.RoundTrip(context.Background(), req, false)
			if !errors.Is(err, pool.ErrInvalidRequest) {
				t.Fatalf("error %v, want ErrInvalidRequest", err)
			}
			wantKind(t, err, pool.Reset)
		})
	}
	if st := p.Stats(); st.ConnectionsTotal != 1 || st.Idle != 1 {
		t.Errorf("stats %+v: the connection should have stayed open and idle", st)
	}
	p.Close()
	waitEmpty(t, p)
	s.ln.Close()
	s.wg.Wait()
	if n := got.Load(); n != 0 {
		t.Errorf("server received %d bytes", n)
	}
}

// TestH1EarlyResponse: a response that comes while the request body is
// still streaming is returned; the body write is abandoned and the
// connection closed.
func TestH1EarlyResponse(t *testing.T) {
	for _, close := range []bool{false, true} {
		t.Run("close="+strconv.FormatBool(close), func(t *testing.T) {
			s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				hdr := "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n"
				if close {
					hdr += "Connection: close\r\n"
				}
				_, _ = io.WriteString(c, hdr+"\r\nbig!")
				_, _ = io.Copy(io.Discard, br) // until the client closes
			})
			p := h1Pool(t, s.addr())
			pr, pw := io.Pipe()
			defer pw.Close()
			go func() { _, _ = pw.Write(make([]byte, 64<<10)) }() // and never the rest
			req, _ := http.NewRequest(http.MethodPost, "http://backend/upload", pr)
			req.ContentLength = 1 << 30
			resp, _, err := p.RoundTrip(context.Background(), req, false)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := readAll(t, resp); got != "big!" {
				t.Errorf("body %q", got)
			}
			waitEmpty(t, p) // not reused: closed
			pw.CloseWithError(errors.New("client gone"))
		})
	}
}

// TestH1Upgrade: a 101 hands over the raw connection, bytes the server
// sent right behind the head included.
func TestH1Upgrade(t *testing.T) {
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhi:")
		_, _ = io.Copy(c, br)
	})
	p := h1Pool(t, s.addr())
	req, _ := http.NewRequest(http.MethodGet, "http://backend/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, _, err := p.RoundTrip(context.Background(), req, false)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("body %T is not an io.ReadWriteCloser", resp.Body)
	}
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatal(err)
	}
	if cw, ok := rw.(interface{ CloseWrite() error }); !ok {
		t.Error("no CloseWrite")
	} else if err := cw.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rw)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hi:ping" {
		t.Errorf("read %q", got)
	}
	if st := p.Stats(); st.Active != 1 || st.Connections != 1 {
		t.Errorf("stats %+v: the upgraded connection must stay counted until closed", st)
	}
	rw.Close()
	waitEmpty(t, p)
}

// TestH1Cancel: the request's context ends a request in flight, waiting
// for the head or reading the body, with its cause's kind.
func TestH1Cancel(t *testing.T) {
	release := make(chan struct{})
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.URL.Path == "/body" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
		}
		<-release
	})
	defer close(release)
	p := h1Pool(t, s.addr())
	timeout := &timeoutErr{}
	for _, tc := range []struct {
		path  string
		cause error
		kind  pool.Kind
	}{
		{"/head", nil, pool.Canceled},
		{"/head", timeout, pool.Timeout},
		{"/body", nil, pool.Canceled},
		{"/body", timeout, pool.Timeout},
	} {
		t.Run(fmt.Sprint(tc.path, tc.kind), func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			var err error
			if tc.path == "/head" {
				time.AfterFunc(20*time.Millisecond, func() { cancel(tc.cause) })
				_, _, err = get(t, p, ctx, tc.path)
			} else {
				var resp *http.Response
				resp, _, err = get(t, p, ctx, tc.path)
				if err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 7)
				if _, err := io.ReadFull(resp.Body, buf); err != nil {
					t.Fatal(err)
				}
				time.AfterFunc(20*time.Millisecond, func() { cancel(tc.cause) })
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			wantKind(t, err, tc.kind)
			waitEmpty(t, p)
		})
	}
}

type timeoutErr struct{}

func (*timeoutErr) Error() string { return "per-try timeout" }
func (*timeoutErr) Timeout() bool { return true }

// TestH1IdleClose: a server closing an idle connection is noticed when
// the connection is next taken; the request goes on a new one.
func TestH1IdleClose(t *testing.T) {
	closed := make(chan struct{}, 10)
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, _, err := readReq(br); err == nil {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
		c.Close()
		closed <- struct{}{}
	})
	p := h1Pool(t, s.addr())
	for i := range 3 {
		resp, info, err := get(t, p, context.Background(), "/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		readAll(t, resp)
		if info.Reused {
			t.Errorf("request %d went on a connection the server closed", i)
		}
		<-closed
	}
	if n := p.Stats().ConnectionsTotal; n != 3 {
		t.Errorf("%d connections opened, want 3", n)
	}
}

// TestH1BodyClose: closing a body before its end closes the connection,
// unless the rest is already buffered.
func TestH1BodyClose(t *testing.T) {
	big := strings.Repeat("z", 1<<20)
	s := newRawServer(t, replies(
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
		"HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(len(big))+"\r\n\r\n"+big,
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	p := h1Pool(t, s.addr())
	for i, wantReused := range []bool{false, true, false} {
		resp, info, err := get(t, p, context.Background(), "/")
		if err != nil {
			t.Fatal(err)
		}
		if info.Reused != wantReused {
			t.Errorf("request %d reused %v", i, info.Reused)
		}
		if i < 2 {
			buf := make([]byte, 1)
			_, _ = resp.Body.Read(buf)
			if i == 1 {
				// Most of a megabyte is not buffered yet: the connection
				// closes.
				resp.Body.Close()
				continue
			}
			// Give the rest of 10 bytes time to be buffered: Read got
			// them all in one go anyway.
		}
		resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
			t.Error("read after Close succeeded")
		}
	}
	if n := s.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// testWatcher is a context with the connection manager's watch hook
// (Watch/Unwatch): end cancels it and runs the watcher, as the stream's
// own timeouts do.
type testWatcher struct {
	context.Context
	cancel context.CancelCauseFunc

	mu                 sync.Mutex
	f                  func()
	watched, unwatched int
}

func newTestWatcher() *testWatcher {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &testWatcher{Context: ctx, cancel: cancel}
}

func (w *testWatcher) Watch(f func()) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.f = f
	w.watched++
	return 7, true
}

func (w *testWatcher) Unwatch(id int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id != 7 {
		panic("unwatch of an id never handed out")
	}
	w.unwatched++
	had := w.f != nil
	w.f = nil
	return had
}

func (w *testWatcher) end(cause error) {
	w.cancel(cause)
	w.mu.Lock()
	f := w.f
	w.f = nil
	w.mu.Unlock()
	if f != nil {
		go f()
	}
}

func (w *testWatcher) counts() (int, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watched, w.unwatched
}

// TestH1Watcher: a request whose context has the watch hook is watched
// through it, not context.AfterFunc: once per request, unwatched when
// the response ends (the connection is then reused), and the watcher
// running aborts the request in flight with the context's cause.
func TestH1Watcher(t *testing.T) {
	release := make(chan struct{})
	s := newRawServer(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if req.URL.Path == "/hang" {
				<-release
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	defer close(release)
	p := h1Pool(t, s.addr())
	for i := range 2 {
		w := newTestWatcher()
		resp, info, err := get(t, p, w, "/")
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); body != "ok" {
			t.Fatalf("body %q", body)
		}
		if watched, unwatched := w.counts(); watched != 1 || unwatched != 1 {
			t.Fatalf("request %d: watched %d, unwatched %d times; want once each", i, watched, unwatched)
		}
		if i == 1 && !info.Reused {
			t.Error("the connection was not reused after an unwatched request")
		}
	}
	w := newTestWatcher()
	time.AfterFunc(20*time.Millisecond, func() { w.end(&timeoutErr{}) })
	_, _, err := get(t, p, w, "/hang")
	wantKind(t, err, pool.Timeout)
	if watched, _ := w.counts(); watched != 1 {
		t.Errorf("watched %d times, want once", watched)
	}
}
