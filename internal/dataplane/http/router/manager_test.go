package router_test

// Tests of the router between the connection manager and the real
// upstream manager (upstream/manager): what it passes on through the
// Upstream interface that only the manager reads.

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

const testCluster = "svc"

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// staticCluster is a STATIC cluster of one host, with
// use_downstream_protocol unless h2 (explicit HTTP/2); od, if set, is its
// outlier detection.
func staticCluster(t *testing.T, addr string, h2 bool, od *clusterv3.OutlierDetection) *clusterv3.Cluster {
	ap := netip.MustParseAddrPort(addr)
	opts := &httpv3.HttpProtocolOptions{}
	if h2 {
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
			},
		}
	} else {
		opts.UpstreamProtocolOptions = &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{},
		}
	}
	return &clusterv3.Cluster{
		Name:                 testCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(2 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: testCluster,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
							Address:       ap.Addr().String(),
							PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
						}}},
					}},
				}},
			}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(t, opts),
		},
		OutlierDetection: od,
	}
}

type observer struct{ ch chan filter.Record }

func (o *observer) Observe(r *filter.Record) {
	select {
	case o.ch <- *r:
	default:
	}
}

func (o *observer) next(t *testing.T) filter.Record {
	t.Helper()
	select {
	case r := <-o.ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request record")
		return filter.Record{}
	}
}

// stack is a connection manager routing everything to a manager's
// cluster.
type stack struct {
	addr string
	up   *manager.Manager
	rec  *observer
}

// startStack runs an upstream manager with cluster c and a connection
// manager in front of it whose only route has retry (may be nil).
func startStack(t *testing.T, c *clusterv3.Cluster, retry *routev3.RetryPolicy) *stack {
	t.Helper()
	rec := &observer{ch: make(chan filter.Record, 16)}
	s := startObservedStack(t, c, retry, rec)
	s.rec = rec
	return s
}

// startObservedStack is startStack with obs observing the records.
func startObservedStack(t *testing.T, c *clusterv3.Cluster, retry *routev3.RetryPolicy, obs hcm.Observer) *stack {
	t.Helper()
	up, err := manager.New(manager.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() { defer close(mdone); _ = up.Run(mctx) }()
	t.Cleanup(func() { mcancel(); <-mdone })
	if errs := up.ApplyClusters(map[string]*clusterv3.Cluster{c.GetName(): c}); len(errs) > 0 {
		t.Fatalf("ApplyClusters: %v", errs)
	}

	h := &hcmv3.HttpConnectionManager{
		StatPrefix: "test",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: "test",
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "all",
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: testCluster},
						Timeout:          durationpb.New(10 * time.Second),
						RetryPolicy:      retry,
					}},
				}},
			}},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
	m, err := hcm.Compile(h, hcm.Deps{Upstream: up, Observer: obs})
	if err != nil {
		t.Fatalf("Compile: %v", err)
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
				local := netip.MustParseAddrPort(c.LocalAddr().String())
				m.Serve(ctx, &listener.Conn{
					Conn:        c,
					Listener:    "test",
					Source:      netip.MustParseAddrPort(c.RemoteAddr().String()),
					Local:       local,
					Destination: local,
					Transport:   listener.TransportRawBuffer,
					Accepted:    time.Now(),
				})
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
		m.Close()
	})
	return &stack{addr: ln.Addr().String(), up: up}
}

// pools returns the protocols of the cluster's pools that were used.
func (s *stack) pools(t *testing.T) []pool.Protocol {
	t.Helper()
	var out []pool.Protocol
	for _, c := range s.up.Clusters() {
		if c.Name != testCluster {
			continue
		}
		for _, h := range c.Hosts {
			for _, p := range h.Pools {
				out = append(out, p.Protocol)
			}
		}
	}
	return out
}

func (s *stack) outlier(t *testing.T) outlier.Stats {
	t.Helper()
	for _, c := range s.up.Clusters() {
		if c.Name == testCluster {
			return c.Outlier
		}
	}
	t.Fatalf("no cluster %s", testCluster)
	return outlier.Stats{}
}

// startGRPC runs a grpc-go server (h2c only) with the health service.
func startGRPC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return ln.Addr().String()
}

// TestUseDownstreamProtocolH2C: a gRPC (h2c) downstream call to a
// use_downstream_protocol cluster reaches an h2c-only backend over HTTP/2.
func TestUseDownstreamProtocolH2C(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		name := "use_downstream_protocol"
		if explicit {
			name = "explicit_http2"
		}
		t.Run(name, func(t *testing.T) {
			st := startStack(t, staticCluster(t, startGRPC(t), explicit, nil), nil)
			conn, err := grpc.NewClient("passthrough:///"+st.addr,
				grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("svc"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("Check through the proxy: %v", err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("status %v", resp.GetStatus())
			}
			rec := st.rec.next(t)
			if rec.Protocol != "HTTP/2.0" || rec.ResponseCode != 200 || rec.Flags != 0 {
				t.Errorf("record: protocol %q code %d flags %v", rec.Protocol, rec.ResponseCode, rec.Flags)
			}
			if got := st.pools(t); len(got) != 1 || got[0] != pool.HTTP2 {
				t.Errorf("pools %v, want [HTTP2]", got)
			}
		})
	}
}

// TestUseDownstreamProtocolHTTP1: an HTTP/1.1 downstream request to a
// use_downstream_protocol cluster goes upstream over HTTP/1.1.
func TestUseDownstreamProtocolHTTP1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protos := make(chan string, 4)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		w.WriteHeader(http.StatusOK)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })

	st := startStack(t, staticCluster(t, ln.Addr().String(), false, nil), nil)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + st.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 {
		t.Fatalf("status %d proto %s", resp.StatusCode, resp.Proto)
	}
	if got := <-protos; got != "HTTP/1.1" {
		t.Errorf("backend saw %s, want HTTP/1.1", got)
	}
	if got := st.pools(t); len(got) != 1 || got[0] != pool.HTTP1 {
		t.Errorf("pools %v, want [HTTP1]", got)
	}
}

// TestPerTryTimeoutIsTimeout: an attempt cut off by per_try_timeout is a
// timeout for the response (UT) and for outlier detection (a local-origin
// failure), not a cancellation.
func TestPerTryTimeoutIsTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { close(release); srv.Close(); <-done })

	od := &clusterv3.OutlierDetection{
		SplitExternalLocalOriginErrors:         true,
		ConsecutiveLocalOriginFailure:          wrapperspb.UInt32(1),
		EnforcingConsecutiveLocalOriginFailure: wrapperspb.UInt32(100),
		MaxEjectionPercent:                     wrapperspb.UInt32(100),
		Interval:                               durationpb.New(time.Hour),
	}
	retry := &routev3.RetryPolicy{
		RetryOn:       "5xx",
		NumRetries:    wrapperspb.UInt32(0),
		PerTryTimeout: durationpb.New(100 * time.Millisecond),
	}
	st := startStack(t, staticCluster(t, ln.Addr().String(), false, od), retry)

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + st.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("status %d, want 504", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v: the per-try timeout did not fire", d)
	}
	rec := st.rec.next(t)
	if rec.Flags&filter.UpstreamRequestTimeout == 0 || rec.Details != "upstream_per_try_timeout" {
		t.Errorf("record flags %v details %q, want UT upstream_per_try_timeout", rec.Flags, rec.Details)
	}
	// The pool reports the timeout as the attempt ends.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := st.outlier(t)
		if s.Detected[outlier.ConsecutiveLocalOriginFailure] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outlier detection saw no local-origin failure: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
