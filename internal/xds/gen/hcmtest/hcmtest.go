package hcmtest

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	dphttp "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// InboundCluster is the cluster the served route table sends every
// request to.
const InboundCluster = "inbound|8000||"

// Clusters routes each cluster to a loopback address: HTTP requests
// through RoundTrip (an unknown cluster goes to the "*" entry), gRPC
// channels through Dial (the exact cluster only), as the cluster manager
// does.
type Clusters map[string]string

// RoundTrip implements router.Upstream.
func (c Clusters) RoundTrip(ctx context.Context, cluster string, _ router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
	addr, ok := c[cluster]
	if !ok {
		addr = c["*"]
	}
	req.URL.Scheme, req.URL.Host = "http", addr
	resp, err := http.DefaultTransport.RoundTrip(req.WithContext(ctx))
	return resp, router.Info{Host: addr}, err
}

// Dial connects to the cluster's address.
func (c Clusters) Dial(ctx context.Context, cluster string, _ *listener.Conn) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", c[cluster])
}

// Serve compiles h (which uses RDS) with a one-route table, serves it on a
// loopback listener until the test ends and returns the address. conn,
// when set, adjusts each accepted connection's listener facts.
func Serve(t testing.TB, h *hcmv3.HttpConnectionManager, up router.Upstream, conn func(*listener.Conn)) string {
	t.Helper()
	rc := &routev3.RouteConfiguration{Name: h.GetRds().GetRouteConfigName(), VirtualHosts: []*routev3.VirtualHost{{
		Name: "inbound", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: InboundCluster},
				Timeout:          durationpb.New(0),
			}},
		}},
	}}}
	tbl, err := route.Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	tables := &dphttp.RouteTables{}
	tables.Set(rc.GetName(), tbl)
	m, err := dphttp.Compile(h, dphttp.Deps{Routes: tables, Upstream: up})
	if err != nil {
		t.Fatalf("compiling the generated HCM: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				lc := &listener.Conn{
					Conn: c, Listener: "virtualInbound", Source: netip.MustParseAddrPort(c.RemoteAddr().String()),
					Local: netip.MustParseAddrPort(c.LocalAddr().String()), Destination: netip.MustParseAddrPort("10.0.0.9:8000"),
					Transport: listener.TransportRawBuffer, Accepted: time.Now(),
				}
				if conn != nil {
					conn(lc)
				}
				m.Serve(ctx, lc)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
		m.Close()
	})
	return ln.Addr().String()
}
