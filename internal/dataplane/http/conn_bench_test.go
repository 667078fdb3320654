package http_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// BenchmarkServeConn is one keep-alive HTTP/1.1 request over a loopback
// socket through Serve: the connection manager's HTTP/1 codec (parsing,
// response framing, the writes), ServeHTTP, the filters and a canned
// upstream. The client side is a raw socket with a minimal response
// reader, so the allocations counted are the proxy's.
func BenchmarkServeConn(b *testing.B) {
	for _, size := range []int{0, 1024, 64 << 10} {
		b.Run("body="+strconv.Itoa(size), func(b *testing.B) { benchServeConn(b, size) })
	}
}

func benchServeConn(b *testing.B, size int) {
	body := strings.Repeat("x", size)
	up := upstreamFunc(func(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
		return &http.Response{
			StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"text/plain"}, "Content-Length": {strconv.Itoa(size)}},
			ContentLength: int64(size),
			Body:          io.NopCloser(strings.NewReader(body)),
		}, router.Info{}, nil
	})
	m, err := hcm.Compile(inlineHCM(b, `{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}`), hcm.Deps{Upstream: up})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	roundTrips(b, m, "GET /echo?size="+strconv.Itoa(size)+" HTTP/1.1\r\nHost: echo.default.svc.cluster.local:8080\r\n"+
		"User-Agent: fortio.org/fortio-1.69.0\r\nX-Forwarded-Proto: http\r\nX-Request-Id: 6a0e5d3c-7d1b-4a4e-9d8c-3f0a2b1c4d5e\r\n\r\n", size)
}

// roundTrips serves one loopback connection with m (closed when the
// benchmark ends) and, per iteration, writes req and reads a 200 response
// with a body of size bytes.
func roundTrips(b *testing.B, m *hcm.Manager, req string, size int) {
	b.Helper()
	b.Cleanup(func() { m.Close() }) // after serveOneConn's cleanup
	c := serveOneConn(b, m)
	raw := []byte(req)
	rr := &rawResponseReader{c: c, buf: make([]byte, 0, 128<<10)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(raw); err != nil {
			b.Fatal(err)
		}
		status, n, err := rr.next()
		if err != nil || status != 200 || n != size {
			b.Fatalf("status %d body %d: %v", status, n, err)
		}
	}
}

// serveOneConn serves the first connection of a loopback listener with m
// (a plaintext downstream as the listener hands it over) and returns the
// client end; everything stops when the benchmark ends.
func serveOneConn(b *testing.B, m *hcm.Manager) net.Conn {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		local := addrPort(c.LocalAddr())
		m.Serve(ctx, &listener.Conn{Conn: c, Listener: "bench", Source: addrPort(c.RemoteAddr()), Local: local, Destination: local, Transport: listener.TransportRawBuffer, Accepted: time.Now()})
	})
	b.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// rawResponseReader reads Content-Length framed responses off a socket
// without allocating.
type rawResponseReader struct {
	c   net.Conn
	buf []byte
}

func (r *rawResponseReader) fill() error {
	if len(r.buf) == cap(r.buf) {
		return io.ErrShortBuffer
	}
	n, err := r.c.Read(r.buf[len(r.buf):cap(r.buf)])
	r.buf = r.buf[:len(r.buf)+n]
	return err
}

// next returns the status and body length of the next response.
func (r *rawResponseReader) next() (int, int, error) {
	for {
		if i := bytes.Index(r.buf, []byte("\r\n\r\n")); i >= 0 {
			head := r.buf[:i+4]
			status, _ := strconv.Atoi(string(head[9:12]))
			cl := -1
			if j := bytes.Index(head, []byte("\nContent-Length: ")); j >= 0 {
				v := head[j+len("\nContent-Length: "):]
				v = v[:bytes.IndexByte(v, '\r')]
				cl, _ = strconv.Atoi(string(v))
			}
			if cl < 0 {
				return status, 0, io.ErrUnexpectedEOF
			}
			for len(r.buf) < len(head)+cl {
				if err := r.fill(); err != nil {
					return 0, 0, err
				}
			}
			rest := copy(r.buf, r.buf[len(head)+cl:])
			r.buf = r.buf[:rest]
			return status, cl, nil
		}
		if err := r.fill(); err != nil {
			return 0, 0, err
		}
	}
}
