package manager_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
)

// rawHTTP1 is a loopback HTTP/1.1 server that answers every request with
// a canned response and allocates next to nothing, so that a benchmark's
// allocations are the client's.
func rawHTTP1(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if bytes.Equal(line, []byte("\r\n")) {
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// BenchmarkRoundTrip measures a request through the manager on a warm
// connection. HTTP/1.1 runs against a canned server, so its allocations
// are the client's (pool and net/http); HTTP/2 runs against net/http's
// server in the same process, whose allocations are included.
func BenchmarkRoundTrip(b *testing.B) {
	cases := []struct {
		proto string
		port  func(b *testing.B) int
	}{
		{"HTTP", rawHTTP1},
		{"HTTP2", func(b *testing.B) int { return newBackend(b, "b0", true).port() }},
	}
	for _, tc := range cases {
		b.Run(tc.proto, func(b *testing.B) {
			port := tc.port(b)
			m := startManager(b, manager.Config{})
			yaml := strings.Replace(serviceYAML(tc.proto, nil, ""), "  endpoints:\n",
				fmt.Sprintf("  endpoints:\n  - {address: 127.0.0.1, ports: {web: %d}}\n", port), 1)
			apply(b, m, generate(b, yaml))
			req, _ := http.NewRequest(http.MethodGet, "http://"+svcHost+"/", nil)
			req.Header.Set("User-Agent", "bench")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, _, err := m.RoundTrip(ctx, svcCluster, router.PickContext{}, req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
