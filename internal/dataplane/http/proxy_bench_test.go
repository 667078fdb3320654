package http_test

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
)

// BenchmarkProxy is one keep-alive HTTP/1.1 request along the whole
// proxied path a sidecar runs: a downstream socket, the HTTP/1 codec,
// ServeHTTP (sanitising, proxy headers, routing), the fault, cors and
// router filters, the real upstream manager (load balancer, circuit
// breakers), its HTTP/1.1 connection pool and client, and a loopback
// backend. The client and the backend are raw sockets that allocate
// nothing per request, so the allocations counted are the proxy's.
func BenchmarkProxy(b *testing.B) {
	for _, size := range []int{0, 1024} {
		b.Run("body="+strconv.Itoa(size), func(b *testing.B) { benchProxy(b, size) })
	}
}

func benchProxy(b *testing.B, size int) {
	backend := cannedBackend(b, size)
	um, err := manager.New(manager.Config{})
	if err != nil {
		b.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() {
		defer close(mdone)
		_ = um.Run(mctx)
	}()
	defer func() { mcancel(); <-mdone }()
	host, port, _ := net.SplitHostPort(backend)
	cl := &clusterv3.Cluster{}
	js := `{"name": "echo", "type": "STATIC", "connect_timeout": "1s",
	  "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [
	    {"endpoint": {"address": {"socket_address": {"address": "` + host + `", "port_value": ` + port + `}}}}]}]}}`
	if err := protojson.Unmarshal([]byte(js), cl); err != nil {
		b.Fatal(err)
	}
	if errs := um.ApplyClusters(map[string]*clusterv3.Cluster{"echo": cl}); errs != nil {
		b.Fatal(errs)
	}

	m, err := hcm.Compile(inlineHCM(b, `{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}`), hcm.Deps{Upstream: um})
	if err != nil {
		b.Fatal(err)
	}
	roundTrips(b, m, "GET /echo?size="+strconv.Itoa(size)+" HTTP/1.1\r\nHost: echo.default.svc.cluster.local:8080\r\n"+
		"User-Agent: fortio.org/fortio-1.69.0\r\nAccept: */*\r\n\r\n", size)
}

// cannedBackend is a loopback HTTP/1.1 keep-alive server answering every
// request (without a body) with the same response of size body bytes.
func cannedBackend(b *testing.B, size int) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\n" +
		"Content-Length: " + strconv.Itoa(size) + "\r\n\r\n" + string(bytes.Repeat([]byte("x"), size)))
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
			})
		}
	})
	b.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}
