package sidecar

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
	"github.com/trellismesh/trellis/internal/freeport"
)

func sockAddr(t *testing.T, hostport string) *corev3.Address {
	t.Helper()
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: h, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(n)}}}}
}

func staticCluster(t *testing.T, name, addr string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: sockAddr(t, addr)}}}}}}}}
}

func routeTo(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: name, Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}}}
}

func hcmListener(t *testing.T, name, addr, rds string) *listenerv3.Listener {
	t.Helper()
	router, _ := anypb.New(&routerv3.Router{})
	h, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: rds, ConfigSource: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{Name: name, Address: sockAddr(t, addr), FilterChains: []*listenerv3.FilterChain{{
		Filters: []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: h}}},
	}}}
}

func apply(t *testing.T, s *Sidecar, typeURL string, ms ...proto.Message) {
	t.Helper()
	res := map[string]proto.Message{}
	for _, m := range ms {
		res[m.(interface{ GetName() string }).GetName()] = m
	}
	set, err := xdsclient.SetOf(typeURL, res, nil)
	if err != nil {
		t.Fatal(err)
	}
	if errs := s.Apply(set); len(errs) > 0 {
		t.Fatalf("Apply %s: %v", typeURL, errs)
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p)))
}

// TestListenerUpdatesKeepConnections runs real HTTP listeners (the HTTP
// connection manager, the cluster manager) fed through Apply as LDS, RDS
// and CDS would: while a client opens a new connection for every request,
// the listener's filter chain is replaced again and again — no connection
// is refused or fails, because the socket stays open. A keep-alive
// connection established before the changes goes on with its old chain,
// which is drained (its next response carries "Connection: close"); when
// the listener is removed, established connections still finish requests
// during the drain time and idle ones are closed after it.
func TestListenerUpdatesKeepConnections(t *testing.T) {
	b1 := httpBackendT(t, "b1")
	b2 := httpBackendT(t, "b2")
	node, err := NodeConfig{IP: "127.0.0.1", PodName: "p", Namespace: "default"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	const drain = 700 * time.Millisecond
	s, err := New(Config{XDSAddress: "127.0.0.1:1", Node: node, DrainDuration: drain})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.clusters.Run(ctx) })
	wg.Go(func() { s.listeners.Run(ctx) })
	defer wg.Wait()
	defer cancel()

	apply(t, s, xdsclient.ClusterType, staticCluster(t, "c1", b1), staticCluster(t, "c2", b2))
	apply(t, s, xdsclient.RouteType, routeTo("r1", "c1"), routeTo("r2", "c2"))
	addr := freeAddr(t)
	apply(t, s, xdsclient.ListenerType, hcmListener(t, "l", addr, "r1"))

	// The established keep-alive connection.
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	// roundTrip sends one request on c and reports the body and whether
	// the response announced the connection's close.
	roundTrip := func(c net.Conn, r *bufio.Reader, path string) (string, bool, error) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: svc\r\n\r\n", path)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			return "", false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), resp.Close, err
	}
	// closedBy waits for c to be closed by the proxy and reports when.
	closedBy := func(c net.Conn, r *bufio.Reader, limit time.Duration) (time.Time, error) {
		c.SetDeadline(time.Now().Add(limit))
		_, err := r.ReadByte()
		var ne net.Error
		switch {
		case err == nil:
			return time.Time{}, errors.New("received bytes, want a close")
		case errors.As(err, &ne) && ne.Timeout():
			return time.Time{}, fmt.Errorf("still open after %v", limit)
		}
		return time.Now(), nil
	}
	old, oldR := dial()
	if got, closing, err := roundTrip(old, oldR, "/a"); err != nil || got != "b1" || closing {
		t.Fatalf("before the updates: %q close=%v %v", got, closing, err)
	}

	// New connections while the chain flips between r1 and r2.
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var load sync.WaitGroup
	load.Go(func() {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := c.Get("http://" + addr + "/load")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			} else {
				ok.Add(1)
			}
		}
	})
	for i := range 20 {
		rds := []string{"r2", "r1"}[i%2]
		apply(t, s, xdsclient.ListenerType, hcmListener(t, "l", addr, rds))
		before := ok.Load()
		deadline := time.Now().Add(5 * time.Second)
		for ok.Load() < before+3 && failed.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	close(stop)
	load.Wait()
	if failed.Load() > 0 || ok.Load() < 40 {
		t.Errorf("during 20 chain replacements: %d requests ok, %d failed (first: %v)", ok.Load(), failed.Load(), firstErr.Load())
	}
	apply(t, s, xdsclient.ListenerType, hcmListener(t, "l", addr, "r2"))

	// The keep-alive connection keeps its old chain, but that chain was
	// drained when it was replaced (Envoy's drain): the response says
	// "Connection: close" and the proxy closes the connection after it.
	if got, closing, err := roundTrip(old, oldR, "/b"); err != nil || got != "b1" || !closing {
		t.Errorf("established connection after the updates: %q close=%v %v, want its old chain (b1) and Connection: close", got, closing, err)
	}
	if _, err := closedBy(old, oldR, time.Second); err != nil {
		t.Errorf("drained connection after its last response: %v", err)
	}

	// Two connections of the current chain, then its removal: refused for
	// new connections; a request on an established one is still served
	// (and closes it); an idle one is closed once the drain time is over.
	busy, busyR := dial()
	idle, idleR := dial()
	for _, c := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{busy, busyR}, {idle, idleR}} {
		if got, closing, err := roundTrip(c.c, c.r, "/d"); err != nil || got != "b2" || closing {
			t.Fatalf("current chain before removal: %q close=%v %v", got, closing, err)
		}
	}
	apply(t, s, xdsclient.ListenerType)
	removed := time.Now()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("removed listener still accepts")
	}
	if got, closing, err := roundTrip(busy, busyR, "/e"); err != nil || got != "b2" || !closing {
		t.Errorf("established connection after removal: %q close=%v %v, want b2 with Connection: close", got, closing, err)
	}
	at, err := closedBy(idle, idleR, drain+5*time.Second)
	if err != nil {
		t.Errorf("idle connection after removal: %v", err)
	} else if el := at.Sub(removed); el < drain/2 {
		t.Errorf("idle connection closed after %v, before the drain time %v", el, drain)
	}
}

func httpBackendT(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, name) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
