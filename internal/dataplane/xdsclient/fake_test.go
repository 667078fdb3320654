package xdsclient_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

// edsCluster is an EDS cluster; with service, its EDS name differs from
// its own.
func edsCluster(name, service string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: service},
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

func assignment(name string) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name}
}

func hcmFilter(t *testing.T, route string) *listenerv3.Filter {
	return &listenerv3.Filter{
		Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &hcmv3.HttpConnectionManager{
			StatPrefix: route,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
				ConfigSource: adsSource(), RouteConfigName: route,
			}},
		})},
	}
}

// httpListener has an HCM using route in a filter chain and one using
// fallback in its default filter chain.
func httpListener(t *testing.T, name, route, fallback string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080},
		}}},
		FilterChains:       []*listenerv3.FilterChain{{Name: "main", Filters: []*listenerv3.Filter{hcmFilter(t, route)}}},
		DefaultFilterChain: &listenerv3.FilterChain{Name: "default", Filters: []*listenerv3.Filter{hcmFilter(t, fallback)}},
	}
}

func routeConfig(name string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name}
}

func deltaResp(t *testing.T, typeURL, nonce string, removed []string, res map[string]proto.Message) *discoveryv3.DeltaDiscoveryResponse {
	r := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, Nonce: nonce, SystemVersionInfo: "sys-" + nonce, RemovedResources: removed}
	for _, name := range slices.Sorted(maps.Keys(res)) {
		r.Resources = append(r.Resources, &discoveryv3.Resource{Name: name, Version: name + "@" + nonce, Resource: mustAny(t, res[name])})
	}
	return r
}

func sotwResp(t *testing.T, typeURL, version, nonce string, res ...proto.Message) *discoveryv3.DiscoveryResponse {
	r := &discoveryv3.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce}
	for _, m := range res {
		r.Resources = append(r.Resources, mustAny(t, m))
	}
	return r
}

// counters is a Metrics that counts.
type counters struct {
	mu                         sync.Mutex
	responses, nacks, restarts int
}

func (c *counters) OnResponse(string, int) { c.mu.Lock(); c.responses++; c.mu.Unlock() }
func (c *counters) OnNACK(string, string)  { c.mu.Lock(); c.nacks++; c.mu.Unlock() }
func (c *counters) OnReconnect(int, time.Duration, error) {
	c.mu.Lock()
	c.restarts++
	c.mu.Unlock()
}

func (c *counters) get() (responses, nacks, restarts int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.responses, c.nacks, c.restarts
}

func fakeClient(t *testing.T, addr string, p xdsclient.Protocol, rec *recorder, m xdsclient.Metrics, fetch time.Duration) *xdsclient.Client {
	t.Helper()
	c, err := xdsclient.New(xdsclient.Config{
		Server:              addr,
		Node:                sidecarNode("127.0.0.11"),
		Consumer:            rec,
		Protocol:            p,
		InitialFetchTimeout: fetch,
		Backoff:             xdsclient.Backoff{Base: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		Metrics:             m,
		Logger:              testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deltaReq checks a delta request's stream, type, nonce, subscriptions and
// initial versions; want* nil means "must be empty".
type deltaWant struct {
	stream    int
	typeURL   string
	nonce     string
	node      bool
	subscribe []string
	initial   map[string]string
	nack      string // substring of error_detail; "" means an ACK (or none)
}

func expectDelta(t *testing.T, f *fakeADS, w deltaWant) {
	t.Helper()
	r := recvReq(t, f.deltaReqs)
	req := r.req
	var errs []string
	if r.stream != w.stream {
		errs = append(errs, fmt.Sprintf("stream %d, want %d", r.stream, w.stream))
	}
	if req.GetTypeUrl() != w.typeURL {
		errs = append(errs, fmt.Sprintf("type %s, want %s", req.GetTypeUrl(), w.typeURL))
	}
	if req.GetResponseNonce() != w.nonce {
		errs = append(errs, fmt.Sprintf("nonce %q, want %q", req.GetResponseNonce(), w.nonce))
	}
	if (req.GetNode() != nil) != w.node {
		errs = append(errs, fmt.Sprintf("node set %v, want %v", req.GetNode() != nil, w.node))
	}
	if got := slices.Sorted(slices.Values(req.GetResourceNamesSubscribe())); !slices.Equal(got, w.subscribe) {
		errs = append(errs, fmt.Sprintf("subscribe %v, want %v", got, w.subscribe))
	}
	if !maps.Equal(req.GetInitialResourceVersions(), w.initial) {
		errs = append(errs, fmt.Sprintf("initial_resource_versions %v, want %v", req.GetInitialResourceVersions(), w.initial))
	}
	if d := req.GetErrorDetail().GetMessage(); (w.nack == "") != (d == "") || !strings.Contains(d, w.nack) {
		errs = append(errs, fmt.Sprintf("error_detail %q, want %q", d, w.nack))
	}
	if len(errs) > 0 {
		t.Fatalf("request %v: %s", req, strings.Join(errs, "; "))
	}
}

// TestDeltaWarmingAndReconnect drives a delta client through a fake server:
// the first stream shows the warming order on the wire (EDS after the CDS
// ACK, LDS only after EDS, RDS after LDS, names from eds service_name and
// from both filter chains); after the server drops the stream, the client
// resubscribes everything with initial_resource_versions of what it
// accepted, and the consumer is never emptied.
func TestDeltaWarmingAndReconnect(t *testing.T) {
	f := startFakeADS(t, false)
	rec := newRecorder()
	met := &counters{}
	c := fakeClient(t, f.addr, xdsclient.Delta, rec, met, -1)
	run(t, c)

	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ClusterType, node: true})
	f.deltaResps <- deltaResp(t, xdsclient.ClusterType, "1", nil, map[string]proto.Message{
		"c1": edsCluster("c1", "svc1"),
		"c2": edsCluster("c2", ""),
	})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ClusterType, nonce: "1"})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.EndpointType, subscribe: []string{"c2", "svc1"}})
	f.deltaResps <- deltaResp(t, xdsclient.EndpointType, "2", nil, map[string]proto.Message{"svc1": assignment("svc1")})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.EndpointType, nonce: "2"})
	// c2 still warms: LDS waits. A removal ("does not exist") ends it.
	f.deltaResps <- deltaResp(t, xdsclient.EndpointType, "3", []string{"c2"}, nil)
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.EndpointType, nonce: "3"})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ListenerType})
	f.deltaResps <- deltaResp(t, xdsclient.ListenerType, "4", nil, map[string]proto.Message{"l1": httpListener(t, "l1", "r1", "r2")})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ListenerType, nonce: "4"})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.RouteType, subscribe: []string{"r1", "r2"}})
	f.deltaResps <- deltaResp(t, xdsclient.RouteType, "5", nil, map[string]proto.Message{"r1": routeConfig("r1"), "r2": routeConfig("r2")})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.RouteType, nonce: "5"})

	want := []applyCall{
		{xdsclient.ClusterType, []string{"c1", "c2"}},
		{xdsclient.EndpointType, []string{"svc1"}},
		{xdsclient.ListenerType, []string{"l1"}},
		{xdsclient.RouteType, []string{"r1", "r2"}},
	}
	if h := rec.history(); !slices.EqualFunc(h, want, func(a, b applyCall) bool {
		return a.typeURL == b.typeURL && slices.Equal(a.names, b.names)
	}) {
		t.Fatalf("Apply calls %v, want %v (the response removing the absent c2 changes nothing)", h, want)
	}

	// The server drops the stream.
	f.deltaResps <- nil
	expectDelta(t, f, deltaWant{stream: 2, typeURL: xdsclient.ClusterType, node: true,
		initial: map[string]string{"c1": "c1@1", "c2": "c2@1"}})
	expectDelta(t, f, deltaWant{stream: 2, typeURL: xdsclient.EndpointType, subscribe: []string{"c2", "svc1"},
		initial: map[string]string{"svc1": "svc1@2"}})
	expectDelta(t, f, deltaWant{stream: 2, typeURL: xdsclient.ListenerType,
		initial: map[string]string{"l1": "l1@4"}})
	expectDelta(t, f, deltaWant{stream: 2, typeURL: xdsclient.RouteType, subscribe: []string{"r1", "r2"},
		initial: map[string]string{"r1": "r1@5", "r2": "r2@5"}})
	if got := rec.names(xdsclient.RouteType); !slices.Equal(got, []string{"r1", "r2"}) {
		t.Errorf("routes after the disconnection: %v", got)
	}
	if len(rec.history()) != 4 {
		t.Errorf("consumer called on disconnection: %v", rec.history())
	}

	// On the new stream, the server removes c1 and changes nothing else:
	// its EDS name is unsubscribed and its assignment dropped.
	f.deltaResps <- deltaResp(t, xdsclient.ClusterType, "1", []string{"c1"}, nil)
	expectDelta(t, f, deltaWant{stream: 2, typeURL: xdsclient.ClusterType, nonce: "1"})
	r := recvReq(t, f.deltaReqs).req
	if r.GetTypeUrl() != xdsclient.EndpointType || !slices.Equal(r.GetResourceNamesUnsubscribe(), []string{"svc1"}) || len(r.GetResourceNamesSubscribe()) != 0 || r.GetResponseNonce() != "" {
		t.Fatalf("after removing c1: request %v, want an EDS unsubscription of svc1 without nonce", r)
	}
	if got := rec.names(xdsclient.EndpointType); len(got) != 0 {
		t.Errorf("assignments after c1's removal: %v, want none", got)
	}
	if st := c.Status(); st.Reconnects != 1 || !st.Connected || st.Protocol != xdsclient.Delta {
		t.Errorf("status %+v", st)
	}
	if _, nacks, restarts := met.get(); nacks != 0 || restarts != 1 {
		t.Errorf("metrics: %d NACKs, %d reconnects; want 0, 1", nacks, restarts)
	}
}

// TestInitialFetchTimeout: an EDS name the server never answers delays LDS
// only until the initial fetch timeout.
func TestInitialFetchTimeout(t *testing.T) {
	f := startFakeADS(t, false)
	rec := newRecorder()
	c := fakeClient(t, f.addr, xdsclient.Delta, rec, nil, 300*time.Millisecond)
	start := time.Now() // the timeout starts with Run, just after this
	run(t, c)

	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ClusterType, node: true})
	f.deltaResps <- deltaResp(t, xdsclient.ClusterType, "1", nil, map[string]proto.Message{"c1": edsCluster("c1", "")})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ClusterType, nonce: "1"})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.EndpointType, subscribe: []string{"c1"}})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ListenerType})
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("LDS requested %v after start, before the initial fetch timeout", waited)
	}
}

// TestSotwFallbackAndNACK: a server without delta gets a state-of-the-world
// stream; a rejected response is NACKed with the last accepted version,
// not retried, and the next valid response is ACKed.
func TestSotwFallbackAndNACK(t *testing.T) {
	f := startFakeADS(t, true)
	rec := newRecorder()
	met := &counters{}
	c := fakeClient(t, f.addr, xdsclient.Delta, rec, met, -1)
	run(t, c)

	first := recvReq(t, f.sotwReqs).req
	if first.GetTypeUrl() != xdsclient.ClusterType || first.GetNode().GetId() == "" || first.GetResponseNonce() != "" || len(first.GetResourceNames()) != 0 {
		t.Fatalf("first sotw request %v: want a wildcard CDS request with the node", first)
	}
	f.sotwResps <- sotwResp(t, xdsclient.ClusterType, "v1", "n1", edsCluster("c1", ""))
	if r := recvReq(t, f.sotwReqs).req; r.GetVersionInfo() != "v1" || r.GetResponseNonce() != "n1" || r.GetErrorDetail() != nil {
		t.Fatalf("request %v: want the ACK of v1", r)
	}
	if r := recvReq(t, f.sotwReqs).req; r.GetTypeUrl() != xdsclient.EndpointType || !slices.Equal(r.GetResourceNames(), []string{"c1"}) || r.GetVersionInfo() != "" {
		t.Fatalf("request %v: want EDS [c1]", r)
	}
	if st := c.Status(); st.Protocol != xdsclient.SotW || st.Types[0].Version != "v1" {
		t.Errorf("status %+v: want sotw with CDS v1", st)
	}

	// An invalid cluster (negative connect timeout) rejects the response.
	bad := edsCluster("bad", "")
	bad.ConnectTimeout = durationpb.New(-time.Second)
	f.sotwResps <- sotwResp(t, xdsclient.ClusterType, "v2", "n2", edsCluster("c1", ""), bad)
	r := recvReq(t, f.sotwReqs).req
	if r.GetVersionInfo() != "v1" || r.GetResponseNonce() != "n2" || !strings.HasPrefix(r.GetErrorDetail().GetMessage(), "CDS bad: invalid: ") {
		t.Fatalf("request %v: want a NACK of n2 keeping v1, naming CDS bad", r)
	}
	if got := rec.names(xdsclient.ClusterType); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("clusters after the NACK: %v", got)
	}
	// No retry loop: the next request is the ACK of the next response.
	f.sotwResps <- sotwResp(t, xdsclient.ClusterType, "v3", "n3", edsCluster("c1", ""), edsCluster("c3", ""))
	if r := recvReq(t, f.sotwReqs).req; r.GetTypeUrl() != xdsclient.ClusterType || r.GetVersionInfo() != "v3" || r.GetResponseNonce() != "n3" || r.GetErrorDetail() != nil {
		t.Fatalf("request %v: want the ACK of v3 right after the NACK", r)
	}
	if r := recvReq(t, f.sotwReqs).req; r.GetTypeUrl() != xdsclient.EndpointType || !slices.Equal(r.GetResourceNames(), []string{"c1", "c3"}) {
		t.Fatalf("request %v: want EDS [c1 c3]", r)
	}
	st := c.Status()
	if st.Types[0].Version != "v3" || !strings.HasPrefix(st.Types[0].LastNACK, "CDS bad:") || st.Reconnects != 1 {
		t.Errorf("status %+v", st)
	}
	if _, nacks, restarts := met.get(); nacks != 1 || restarts != 1 {
		t.Errorf("metrics: %d NACKs, %d reconnects; want 1, 1", nacks, restarts)
	}
}

// TestInitialFetchTimeoutBeforeConnecting: when the timeout has passed
// before the first stream (control plane unreachable at start), LDS is
// requested at once, still after CDS and with the node on the first
// request.
func TestInitialFetchTimeoutBeforeConnecting(t *testing.T) {
	f := startFakeADS(t, false)
	c := fakeClient(t, f.addr, xdsclient.Delta, newRecorder(), nil, time.Nanosecond)
	run(t, c)
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ClusterType, node: true})
	expectDelta(t, f, deltaWant{stream: 1, typeURL: xdsclient.ListenerType})
}
