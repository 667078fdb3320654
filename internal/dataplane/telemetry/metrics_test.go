package telemetry

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

var local = Workload{Name: "productpage-v1", Namespace: "shop", App: "productpage", Version: "v1",
	CanonicalService: "productpage", CanonicalRevision: "v1", Cluster: "Kubernetes", Principal: "spiffe://cluster.local/ns/shop/sa/productpage"}

const reviews = "outbound|9080||reviews.shop.svc.cluster.local"

func newMetrics(t *testing.T) *Metrics {
	t.Helper()
	m := New(Config{Local: local})
	svc := func(host, name, ns string) *corev3.Metadata {
		st, err := structpb.NewStruct(map[string]any{"services": []any{map[string]any{"host": host, "name": name, "namespace": ns}}})
		if err != nil {
			t.Fatal(err)
		}
		return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st}}
	}
	mustSet(t, m.SetClusters(xdsset.Of(map[string]*clusterv3.Cluster{
		reviews: {Name: reviews, Metadata: svc("reviews.shop.svc.cluster.local", "reviews", "shop"),
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: reviews}},
		"inbound|9080||": {Name: "inbound|9080||", Metadata: svc("productpage.shop.svc.cluster.local", "productpage", "shop")},
	})))
	wl, _ := structpb.NewStruct(map[string]any{"workload": "reviews-v2;shop;reviews;v2;"})
	mustSet(t, m.SetEndpoints(xdsset.Of(map[string]*endpointv3.ClusterLoadAssignment{reviews: {
		ClusterName: reviews,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: "10.1.0.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": wl}},
		}}}},
	}})))
	return m
}

func mustSet(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// sample returns the value of the sample of metric name whose labels
// include want, and that sample's labels.
func sample(body, name string, want map[string]string) (string, map[string]string, bool) {
	for line := range strings.SplitSeq(body, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		lbl, val, _ := strings.Cut(rest, "} ")
		got := map[string]string{}
		for kv := range strings.SplitSeq(lbl, "\",") {
			k, v, _ := strings.Cut(kv, "=\"")
			got[k] = strings.TrimSuffix(v, "\"")
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
				break
			}
		}
		if match {
			return val, got, true
		}
	}
	return "", nil, false
}

func TestOutboundHTTP(t *testing.T) {
	m := newMetrics(t)
	r := &filter.Record{Listener: "0.0.0.0_9080", Cluster: reviews, UpstreamHost: "10.1.0.7:9080", Authority: "reviews:9080",
		ResponseCode: 200, Duration: 7 * time.Millisecond, BytesReceived: 20, BytesSent: 300, Header: http.Header{}}
	m.Observe(r)
	m.Observe(r)
	body := scrape(t, m.Handler())

	v, labels, ok := sample(body, "istio_requests_total", map[string]string{"reporter": "source"})
	if !ok || v != "2" {
		t.Fatalf("istio_requests_total = %q, %v\n%s", v, ok, body)
	}
	want := map[string]string{
		"reporter": "source", "source_workload": "productpage-v1", "source_workload_namespace": "shop", "source_principal": "unknown",
		"source_app": "productpage", "source_version": "v1", "source_canonical_service": "productpage", "source_canonical_revision": "v1",
		"source_cluster": "Kubernetes", "destination_workload": "reviews-v2", "destination_workload_namespace": "shop",
		"destination_principal": "unknown", "destination_app": "unknown", "destination_version": "unknown",
		"destination_service": "reviews.shop.svc.cluster.local", "destination_service_name": "reviews", "destination_service_namespace": "shop",
		"destination_canonical_service": "reviews", "destination_canonical_revision": "v2", "destination_cluster": "unknown",
		"request_protocol": "http", "response_code": "200", "grpc_response_status": "", "response_flags": "-",
		"connection_security_policy": "unknown",
	}
	if len(labels) != len(want) {
		t.Errorf("labels = %v, want %d of them", labels, len(want))
	}
	for k, w := range want {
		if labels[k] != w {
			t.Errorf("label %s = %q, want %q", k, labels[k], w)
		}
	}
	// Duration 7ms: not in le=5, in le=10; sizes 20 and 300.
	for _, c := range []struct {
		name, le, want string
	}{
		{"istio_request_duration_milliseconds_bucket", "5", "0"},
		{"istio_request_duration_milliseconds_bucket", "10", "2"},
		{"istio_request_duration_milliseconds_bucket", "3.6e+06", "2"},
		{"istio_request_duration_milliseconds_bucket", "+Inf", "2"},
		{"istio_request_bytes_bucket", "10", "0"},
		{"istio_request_bytes_bucket", "25", "2"},
		{"istio_response_bytes_bucket", "250", "0"},
		{"istio_response_bytes_bucket", "500", "2"},
	} {
		if v, _, ok := sample(body, c.name, map[string]string{"le": c.le}); !ok || v != c.want {
			t.Errorf("%s{le=%s} = %q, want %q", c.name, c.le, v, c.want)
		}
	}
	if v, _, _ := sample(body, "istio_request_duration_milliseconds_sum", nil); v != "14" {
		t.Errorf("duration sum = %q, want 14", v)
	}
	if v, _, _ := sample(body, "istio_response_bytes_sum", nil); v != "600" {
		t.Errorf("response bytes sum = %q, want 600", v)
	}
	if n := strings.Count(body, "istio_request_duration_milliseconds_bucket{"); n != len(Buckets)+1 {
		t.Errorf("%d duration buckets, want %d", n, len(Buckets)+1)
	}
}

func TestInboundAndFallbacks(t *testing.T) {
	m := newMetrics(t)
	m.Observe(&filter.Record{Listener: "virtualInbound", Cluster: "inbound|9080||", ResponseCode: 200, Authority: "productpage:9080"})
	// The same over mutual TLS: the peer's identity is the source principal.
	m.Observe(&filter.Record{Listener: "virtualInbound", Cluster: "inbound|9080||", ResponseCode: 201, Authority: "productpage:9080",
		MutualTLS: true, PeerIdentity: "spiffe://cluster.local/ns/shop/sa/reviews"})
	// No route: the virtualInbound listener makes it inbound all the same.
	m.Observe(&filter.Record{Listener: "virtualInbound", ResponseCode: 404, Flags: filter.NoRouteFound, Authority: "other:80"})
	// Outbound through the passthrough cluster, gRPC failing with 503.
	m.Observe(&filter.Record{Listener: "virtualOutbound", Cluster: "PassthroughCluster", UpstreamHost: "1.2.3.4:443", ResponseCode: 503,
		Flags: filter.UpstreamConnectionFailure | filter.UpstreamRetryLimitExceeded, Authority: "example.com",
		Header: http.Header{"Content-Type": {"application/grpc+proto"}}})
	// Outbound cluster without metadata: the service comes from its name.
	m.Observe(&filter.Record{Listener: "0.0.0.0_80", Cluster: "outbound|80|v1|ratings.prod.svc.cluster.local", ResponseCode: 0, Flags: filter.DownstreamConnectionTermination})
	body := scrape(t, m.Handler())
	for _, c := range []map[string]string{
		{"reporter": "destination", "response_code": "200", "destination_workload": "productpage-v1", "destination_app": "productpage",
			"destination_service": "productpage.shop.svc.cluster.local", "destination_service_name": "productpage",
			"source_workload": "unknown", "source_principal": "unknown", "destination_principal": "unknown", "connection_security_policy": "none"},
		{"reporter": "destination", "response_code": "201", "connection_security_policy": "mutual_tls",
			"source_principal": "spiffe://cluster.local/ns/shop/sa/reviews", "destination_principal": "spiffe://cluster.local/ns/shop/sa/productpage"},
		{"reporter": "destination", "response_code": "404", "response_flags": "NR", "destination_service": "other",
			"destination_service_namespace": "shop"},
		{"reporter": "source", "response_code": "503", "response_flags": "UF,URX", "request_protocol": "grpc", "grpc_response_status": "14",
			"destination_service": "example.com", "destination_service_name": "PassthroughCluster", "destination_workload": "unknown"},
		{"reporter": "source", "response_code": "0", "response_flags": "DC", "destination_service": "ratings.prod.svc.cluster.local",
			"destination_service_name": "ratings", "destination_service_namespace": "prod"},
	} {
		if v, _, ok := sample(body, "istio_requests_total", c); !ok || v != "1" {
			t.Errorf("no istio_requests_total 1 with %v\n%s", c, body)
		}
	}
}

func TestMetadataUpdate(t *testing.T) {
	m := newMetrics(t)
	r := &filter.Record{Cluster: reviews, UpstreamHost: "10.1.0.7:9080", ResponseCode: 200}
	m.Observe(r)
	mustSet(t, m.SetEndpoints(xdsset.Of[*endpointv3.ClusterLoadAssignment](nil))) // the endpoint left: its workload is unknown now
	m.Observe(r)
	body := scrape(t, m.Handler())
	for _, w := range []string{"reviews-v2", "unknown"} {
		if v, _, ok := sample(body, "istio_requests_total", map[string]string{"destination_workload": w}); !ok || v != "1" {
			t.Errorf("destination_workload %s: %q %v", w, v, ok)
		}
	}
}

func TestObserveAllocs(t *testing.T) {
	m := newMetrics(t)
	r := &filter.Record{Listener: "0.0.0.0_9080", Cluster: reviews, UpstreamHost: "10.1.0.7:9080", Authority: "reviews:9080",
		ResponseCode: 200, Duration: time.Millisecond, Header: http.Header{"Content-Type": {"text/plain"}}}
	m.Observe(r)
	if n := testing.AllocsPerRun(100, func() { m.Observe(r) }); n != 0 {
		t.Errorf("Observe allocates %v times per request", n)
	}
	// Without metadata: the service comes from the cluster name, or the
	// authority for the pass-through cluster.
	m = New(Config{Local: local})
	for _, c := range []string{reviews, "PassthroughCluster"} {
		r.Cluster = c
		m.Observe(r)
		if n := testing.AllocsPerRun(100, func() { m.Observe(r) }); n != 0 {
			t.Errorf("%s without metadata: Observe allocates %v times per request", c, n)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	m := New(Config{Local: local})
	r := &filter.Record{Cluster: reviews, UpstreamHost: "10.1.0.7:9080", ResponseCode: 200, Duration: time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Observe(r)
		}
	})
}

func TestTCP(t *testing.T) {
	m := newMetrics(t)
	o := m.TCP()
	out := &tcp.Session{Cluster: reviews, Downstream: &listener.Conn{Listener: "0.0.0.0_9080"},
		Upstream: &net.TCPAddr{IP: net.IPv4(10, 1, 0, 7), Port: 9080}}
	o.Connected(out)
	o.Transferred(out, tcp.ToUpstream, 10)
	o.Transferred(out, tcp.ToDownstream, 32)
	o.Transferred(out, tcp.ToUpstream, 5)
	o.Closed(out)
	in := &tcp.Session{Cluster: "inbound|9080||", Downstream: &listener.Conn{Listener: "virtualInbound", Transport: listener.TransportTLS,
		MutualTLS: true, PeerIdentity: "spiffe://cluster.local/ns/shop/sa/client"}}
	o.Closed(in) // connect failed: opened and closed
	// TLS passed through (or terminated without a client certificate) is
	// not mutual TLS.
	pass := &tcp.Session{Cluster: "inbound|9443||", Downstream: &listener.Conn{Listener: "virtualInbound", Transport: listener.TransportTLS}}
	o.Closed(pass)
	body := scrape(t, m.Handler())
	src := map[string]string{"reporter": "source", "destination_workload": "reviews-v2", "destination_service_name": "reviews",
		"request_protocol": "tcp", "response_flags": "-", "connection_security_policy": "unknown", "source_workload": "productpage-v1"}
	for name, want := range map[string]string{
		"istio_tcp_received_bytes_total": "15", "istio_tcp_sent_bytes_total": "32",
		"istio_tcp_connections_opened_total": "1", "istio_tcp_connections_closed_total": "1",
	} {
		v, labels, ok := sample(body, name, src)
		if !ok || v != want {
			t.Errorf("%s = %q, want %s\n%s", name, v, want, body)
		}
		if _, has := labels["response_code"]; has {
			t.Errorf("%s has a response_code label", name)
		}
	}
	dst := map[string]string{"reporter": "destination", "destination_workload": "productpage-v1", "connection_security_policy": "mutual_tls",
		"destination_service": "productpage.shop.svc.cluster.local", "source_workload": "unknown",
		"source_principal": "spiffe://cluster.local/ns/shop/sa/client", "destination_principal": "spiffe://cluster.local/ns/shop/sa/productpage"}
	passDst := map[string]string{"reporter": "destination", "destination_service": "unknown", "connection_security_policy": "none",
		"source_principal": "unknown", "destination_principal": "unknown"}
	for _, want := range []map[string]string{dst, passDst} {
		for _, name := range []string{"istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total"} {
			if v, _, ok := sample(body, name, want); !ok || v != "1" {
				t.Errorf("%s inbound %v = %q %v\n%s", name, want, v, ok, body)
			}
		}
	}
}

func TestLocalWorkload(t *testing.T) {
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "shop", "LABELS": map[string]any{"app": "web", "version": "v3"}})
	w := LocalWorkload(&corev3.Node{Id: "sidecar~10.0.0.7~web-1.shop~shop.svc.cluster.local", Metadata: md})
	want := Workload{Name: "web-1", Namespace: "shop", App: "web", Version: "v3", CanonicalService: "web", CanonicalRevision: "v3"}
	if w != want {
		t.Errorf("LocalWorkload = %+v, want %+v", w, want)
	}
}

func TestServiceFromName(t *testing.T) {
	for in, want := range map[string]Service{
		"outbound|80||reviews.shop.svc.cluster.local": {"reviews.shop.svc.cluster.local", "reviews", "shop"},
		"outbound|443|v1|api.example.com":             {"api.example.com", "api.example.com", ""},
	} {
		if got, ok := serviceFromName(in); !ok || got != want {
			t.Errorf("serviceFromName(%q) = %+v %v", in, got, ok)
		}
	}
	for _, in := range []string{"inbound|80||", "PassthroughCluster", "outbound|80||"} {
		if _, ok := serviceFromName(in); ok {
			t.Errorf("serviceFromName(%q): want none", in)
		}
	}
}

// TestGRPCResponseStatus: grpc_response_status is the grpc-status the
// response carried (trailers or trailers-only), which an HTTP 200 hides;
// without one, an HTTP error maps to a gRPC status; plain HTTP has none.
func TestGRPCResponseStatus(t *testing.T) {
	m := newMetrics(t)
	grpcReq := http.Header{"Content-Type": {"application/grpc"}}
	cluster := "outbound|9080||reviews.shop.svc.cluster.local"
	for _, r := range []*filter.Record{
		{Cluster: cluster, ResponseCode: 200, Header: grpcReq, GRPCStatus: 0, GRPCStatusSet: true, Path: "/ok"},
		{Cluster: cluster, ResponseCode: 200, Header: grpcReq, GRPCStatus: 5, GRPCStatusSet: true, Path: "/notfound"},
		{Cluster: cluster, ResponseCode: 200, Header: grpcReq, GRPCStatus: 5, GRPCStatusSet: true, Path: "/notfound"},
		{Cluster: cluster, ResponseCode: 503, Header: grpcReq, Path: "/reset"},
		{Cluster: cluster, ResponseCode: 200, Header: grpcReq, Path: "/cut"},
		{Cluster: cluster, ResponseCode: 200, Header: http.Header{}, GRPCStatus: 3, GRPCStatusSet: true, Path: "/http"},
	} {
		m.Observe(r)
	}
	body := scrape(t, m.Handler())
	for _, c := range []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{"request_protocol": "grpc", "response_code": "200", "grpc_response_status": "0"}, "1"},
		{map[string]string{"request_protocol": "grpc", "response_code": "200", "grpc_response_status": "5"}, "2"},
		{map[string]string{"request_protocol": "grpc", "response_code": "503", "grpc_response_status": "14"}, "1"},
		{map[string]string{"request_protocol": "grpc", "response_code": "200", "grpc_response_status": ""}, "1"},
		{map[string]string{"request_protocol": "http", "response_code": "200", "grpc_response_status": ""}, "1"},
	} {
		if v, _, ok := sample(body, "istio_requests_total", c.labels); !ok || v != c.want {
			t.Errorf("istio_requests_total%v = %q, want %s\n%s", c.labels, v, c.want, body)
		}
	}
}

// TestOutboundDestinationPrincipal: the source reporter's
// destination_principal is the upstream host's identity verified by the
// upstream TLS handshake (HTTP and TCP), "unknown" without one; source
// side, connection_security_policy stays "unknown" either way.
func TestOutboundDestinationPrincipal(t *testing.T) {
	const reviewsID = "spiffe://cluster.local/ns/shop/sa/reviews"
	m := newMetrics(t)
	m.Observe(&filter.Record{Listener: "0.0.0.0_9080", Cluster: reviews, UpstreamHost: "10.1.0.7:9080",
		UpstreamPeerIdentity: reviewsID, ResponseCode: 200, Header: http.Header{}})
	m.Observe(&filter.Record{Listener: "0.0.0.0_9080", Cluster: reviews, UpstreamHost: "10.1.0.7:9080",
		ResponseCode: 201, Header: http.Header{}})
	o := m.TCP()
	s := &tcp.Session{Cluster: reviews, Downstream: &listener.Conn{Listener: "0.0.0.0_9080"},
		Upstream: &net.TCPAddr{IP: net.IPv4(10, 1, 0, 7), Port: 9080}, UpstreamPeerIdentity: reviewsID}
	o.Connected(s)
	o.Closed(s)
	body := scrape(t, m.Handler())

	for _, c := range []struct {
		name string
		want map[string]string
	}{
		{"istio_requests_total", map[string]string{"response_code": "200", "destination_principal": reviewsID}},
		{"istio_requests_total", map[string]string{"response_code": "201", "destination_principal": "unknown"}},
		{"istio_tcp_connections_opened_total", map[string]string{"destination_principal": reviewsID}},
		{"istio_tcp_connections_closed_total", map[string]string{"destination_principal": reviewsID}},
	} {
		c.want["reporter"] = "source"
		v, labels, ok := sample(body, c.name, c.want)
		if !ok || v != "1" {
			t.Errorf("%s %v = %q %v\n%s", c.name, c.want, v, ok, body)
			continue
		}
		for k, w := range map[string]string{"source_principal": "unknown", "connection_security_policy": "unknown", "destination_workload": "reviews-v2"} {
			if labels[k] != w {
				t.Errorf("%s %v: label %s = %q, want %q", c.name, c.want, k, labels[k], w)
			}
		}
	}
}
