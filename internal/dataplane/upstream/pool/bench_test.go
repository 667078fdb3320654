package pool_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

// cannedServer is a loopback HTTP/1.1 keep-alive server answering every
// request with the same response and allocating next to nothing, so that
// a benchmark's allocations are the client's. It reads request bodies
// framed by Content-Length.
func cannedServer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
				cl := 0
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
						cl, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
					}
					if bytes.Equal(line, []byte("\r\n")) {
						if _, err := br.Discard(cl); err != nil {
							return
						}
						cl = 0
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			})
		}
	})
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// BenchmarkRoundTrip is one HTTP/1.1 request on a warm pooled connection
// to a canned keep-alive server: the pool's and its client's per-request
// work.
func BenchmarkRoundTrip(b *testing.B) {
	cases := []struct {
		name string
		body string
	}{
		{"GET", ""},
		{"POST1k", strings.Repeat("x", 1024)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			addr := cannedServer(b)
			p := newPool(b, addr, circuit.DefaultThresholds(), pool.HTTP1, nil)
			ctx := context.Background()
			hdr := http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}, "X-Request-Id": {"0b4c3e0e-5a8e-4d1c-9a57-3f0b1f6c7d21"}}
			b.ReportAllocs()
			for b.Loop() {
				req := &http.Request{Method: http.MethodGet, URL: benchURL, Host: "backend", Header: hdr, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
				if tc.body != "" {
					req.Method = http.MethodPost
					req.Body = io.NopCloser(strings.NewReader(tc.body))
					req.ContentLength = int64(len(tc.body))
				}
				resp, _, err := p.RoundTrip(ctx, req, false)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

var benchURL = &url.URL{Scheme: "http", Host: "backend", Path: "/echo"}
