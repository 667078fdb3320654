package tracing

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collectorServer is a real OTLP/gRPC trace collector on loopback.
type collectorServer struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
}

func (c *collectorServer) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *collectorServer) spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, r := range c.reqs {
		for _, rs := range r.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				out = append(out, ss.GetSpans()...)
			}
		}
	}
	return out
}

func startCollector(t testing.TB) *collectorServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	c := &collectorServer{addr: ln.Addr().String()}
	coltracepb.RegisterTraceServiceServer(srv, c)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return c
}

func otelTracing(t testing.TB, grpcService *corev3.GrpcService, randomPct float64) *hcmv3.HttpConnectionManager_Tracing {
	t.Helper()
	cfg, err := anypb.New(&tracev3.OpenTelemetryConfig{GrpcService: grpcService, ServiceName: "productpage.default"})
	if err != nil {
		t.Fatal(err)
	}
	return &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: randomPct},
		Provider:       &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: cfg}},
	}
}

func googleGRPC(target string) *corev3.GrpcService {
	return &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: target, StatPrefix: "otel"}}}
}

// serve runs one request's stream through f and returns the request
// headers the next handler saw and the record.
func serve(t *testing.T, f *Filter, in http.Header) (http.Header, *filter.Record) {
	t.Helper()
	r := httptest.NewRequest("GET", "http://reviews:9080/reviews/1", nil)
	for k, v := range in {
		r.Header[k] = v
	}
	s := filter.NewStream(httptest.NewRecorder(), r, nil)
	var seen http.Header
	f.Wrap(filter.HandlerFunc(func(s *filter.Stream) { seen = s.Request.Header.Clone() })).ServeStream(s)
	return seen, &s.Record
}

// sequence returns a Random that yields vs in turn, then 0.
func sequence(vs ...uint64) func() uint64 {
	var mu sync.Mutex
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		if len(vs) == 0 {
			return 0
		}
		v := vs[0]
		vs = vs[1:]
		return v
	}
}

func newTracer(t *testing.T, cfg Config) *Tracer {
	tr := New(cfg)
	t.Cleanup(func() { tr.Close() })
	return tr
}

const (
	traceHex  = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentHex = "00f067aa0ba902b7"
)

func TestPropagation(t *testing.T) {
	// At 100% sampling nothing is drawn for the decision: new traces draw
	// the trace id's two halves, then the span id.
	const newSpan = "1111111111111111"
	for _, tc := range []struct {
		name        string
		in          http.Header
		random      []uint64
		wantTrace   string
		wantParent  string
		wantSampled bool
		wantB3      string // the rewritten single b3 header, if one came in
		wantState   string
	}{
		{name: "W3C in, sampled", in: http.Header{"Traceparent": {"00-" + traceHex + "-" + parentHex + "-01"}, "Tracestate": {"congo=t61rcWkgMzE"}},
			random: []uint64{0x1111111111111111}, wantTrace: traceHex, wantParent: parentHex, wantSampled: true, wantState: "congo=t61rcWkgMzE"},
		{name: "W3C in, not sampled", in: http.Header{"Traceparent": {"00-" + traceHex + "-" + parentHex + "-00"}},
			random: []uint64{0x1111111111111111}, wantTrace: traceHex, wantParent: parentHex, wantSampled: false},
		{name: "B3 multi in", in: http.Header{"X-B3-Traceid": {traceHex}, "X-B3-Spanid": {parentHex}, "X-B3-Sampled": {"1"}},
			random: []uint64{0x1111111111111111}, wantTrace: traceHex, wantParent: parentHex, wantSampled: true},
		{name: "B3 multi 64-bit, debug", in: http.Header{"X-B3-Traceid": {"a3ce929d0e0e4736"}, "X-B3-Spanid": {parentHex}, "X-B3-Flags": {"1"}},
			random: []uint64{0x1111111111111111}, wantTrace: "0000000000000000a3ce929d0e0e4736", wantParent: parentHex, wantSampled: true},
		{name: "B3 single in", in: http.Header{"B3": {traceHex + "-" + parentHex + "-1"}},
			random: []uint64{0x1111111111111111}, wantTrace: traceHex, wantParent: parentHex, wantSampled: true,
			wantB3: traceHex + "-" + newSpan + "-1-" + parentHex},
		{name: "B3 deferred decision: sampled here (100%)", in: http.Header{"X-B3-Traceid": {traceHex}, "X-B3-Spanid": {parentHex}},
			random: []uint64{0x1111111111111111}, wantTrace: traceHex, wantParent: parentHex, wantSampled: true},
		{name: "malformed traceparent: new trace", in: http.Header{"Traceparent": {"00-" + strings.ToUpper(traceHex) + "-" + parentHex + "-01"}},
			random: []uint64{0xaaaaaaaaaaaaaaaa, 0xbbbbbbbbbbbbbbbb, 0x1111111111111111}, wantTrace: "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb", wantSampled: true},
		{name: "none in: new trace", random: []uint64{0xaaaaaaaaaaaaaaaa, 0xbbbbbbbbbbbbbbbb, 0x1111111111111111},
			wantTrace: "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb", wantSampled: true},
		{name: "bare b3 decision 0", in: http.Header{"B3": {"0"}}, random: []uint64{0xaaaaaaaaaaaaaaaa, 0xbbbbbbbbbbbbbbbb, 0x1111111111111111},
			wantTrace: "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb", wantSampled: false, wantB3: "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb-" + newSpan + "-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracer(t, Config{Random: sequence(tc.random...)})
			f, err := tr.Compile(otelTracing(t, googleGRPC("127.0.0.1:1"), 100))
			if err != nil {
				t.Fatal(err)
			}
			in := tc.in.Clone()
			if in == nil {
				in = http.Header{}
			}
			in.Set("X-Request-Id", "req-1")
			out, rec := serve(t, f, in)
			flags := "00"
			sampled := "0"
			if tc.wantSampled {
				flags, sampled = "01", "1"
			}
			want := map[string]string{
				"Traceparent":  "00-" + tc.wantTrace + "-" + newSpan + "-" + flags,
				"X-B3-Traceid": tc.wantTrace,
				"X-B3-Spanid":  newSpan,
				"X-B3-Sampled": sampled,
				"X-Request-Id": "req-1",
			}
			if tc.wantParent != "" {
				want["X-B3-Parentspanid"] = tc.wantParent
			}
			if tc.wantState != "" {
				want["Tracestate"] = tc.wantState
			}
			if tc.wantB3 != "" {
				want["B3"] = tc.wantB3
			}
			for k, v := range want {
				if got := out.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.wantParent == "" && out.Get("X-B3-Parentspanid") != "" {
				t.Errorf("x-b3-parentspanid %q on a root span", out.Get("X-B3-Parentspanid"))
			}
			if out.Get("X-B3-Flags") != "" {
				t.Error("x-b3-flags forwarded")
			}
			if hex.EncodeToString(rec.TraceID[:]) != tc.wantTrace || hex.EncodeToString(rec.SpanID[:]) != newSpan || rec.TraceSampled != tc.wantSampled {
				t.Errorf("record: trace %x span %x sampled %v", rec.TraceID, rec.SpanID, rec.TraceSampled)
			}
			wantParentID := tc.wantParent
			if wantParentID == "" {
				wantParentID = "0000000000000000"
			}
			if got := hex.EncodeToString(rec.ParentSpanID[:]); got != wantParentID {
				t.Errorf("record parent %s, want %s", got, wantParentID)
			}
		})
	}
}

// TestSamplingPercentage: without an incoming decision, random_sampling
// decides: draws below the percentage sample; about that share of many
// real random draws do.
func TestSamplingPercentage(t *testing.T) {
	for _, tc := range []struct {
		draw uint64
		want bool
	}{{0, true}, {9_999, true}, {10_000, false}, {999_999, false}} {
		tr := newTracer(t, Config{Random: sequence(tc.draw, 1, 1, 1)})
		f, err := tr.Compile(otelTracing(t, googleGRPC("127.0.0.1:1"), 1)) // 1%
		if err != nil {
			t.Fatal(err)
		}
		if _, rec := serve(t, f, nil); rec.TraceSampled != tc.want {
			t.Errorf("draw %d at 1%%: sampled %v, want %v", tc.draw, rec.TraceSampled, tc.want)
		}
	}
	tr := newTracer(t, Config{})
	f, err := tr.Compile(otelTracing(t, googleGRPC("127.0.0.1:1"), 25))
	if err != nil {
		t.Fatal(err)
	}
	n, sampled := 4000, 0
	for range n {
		if _, rec := serve(t, f, nil); rec.TraceSampled {
			sampled++
		}
	}
	// 25% of 4000 = 1000; 6 standard deviations (~27) either way.
	if sampled < 840 || sampled > 1160 {
		t.Errorf("%d of %d sampled at 25%%", sampled, n)
	}
	tr2 := newTracer(t, Config{Random: sequence(0, 1, 1, 1)})
	f2, err := tr2.Compile(otelTracing(t, googleGRPC("127.0.0.1:1"), 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, rec := serve(t, f2, http.Header{"X-Envoy-Force-Trace": {"true"}}); !rec.TraceSampled {
		t.Error("x-envoy-force-trace not sampled at 0%")
	}
}

// TestExport: a sampled request's span reaches a real OTLP collector with
// the trace id, its parent, name, kind and attributes; unsampled ones do
// not.
func TestExport(t *testing.T) {
	c := startCollector(t)
	tr := newTracer(t, Config{})
	f, err := tr.Compile(otelTracing(t, googleGRPC(c.addr), 100))
	if err != nil {
		t.Fatal(err)
	}
	_, rec := serve(t, f, http.Header{"Traceparent": {"00-" + traceHex + "-" + parentHex + "-01"}})
	rec.Start, rec.Duration = time.Unix(1700000000, 0), 3*time.Millisecond
	rec.Method, rec.Authority, rec.Path, rec.Protocol = "GET", "reviews:9080", "/reviews/1?u=2", "HTTP/1.1"
	rec.Listener, rec.Cluster, rec.ResponseCode = "virtualInbound", "inbound|9080||", 503
	rec.Source = netip.MustParseAddrPort("10.0.0.3:5000")
	f.Observe(rec)
	_, unsampled := serve(t, f, http.Header{"Traceparent": {"00-" + traceHex + "-" + parentHex + "-00"}})
	f.Observe(unsampled)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr.Flush(ctx)
	spans := c.spans()
	if len(spans) != 1 {
		t.Fatalf("%d spans exported, want 1", len(spans))
	}
	sp := spans[0]
	if hex.EncodeToString(sp.GetTraceId()) != traceHex || hex.EncodeToString(sp.GetParentSpanId()) != parentHex ||
		string(sp.GetSpanId()) != string(rec.SpanID[:]) {
		t.Errorf("ids: trace %x parent %x span %x", sp.GetTraceId(), sp.GetParentSpanId(), sp.GetSpanId())
	}
	if sp.GetName() != "reviews:9080/reviews/1" || sp.GetKind() != tracepb.Span_SPAN_KIND_SERVER ||
		sp.GetEndTimeUnixNano()-sp.GetStartTimeUnixNano() != uint64(3*time.Millisecond) ||
		sp.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span %v", sp)
	}
	attrs := map[string]string{}
	for _, kv := range sp.GetAttributes() {
		attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	for k, v := range map[string]string{"http.method": "GET", "http.url": "http://reviews:9080/reviews/1?u=2", "http.status_code": "503",
		"upstream_cluster": "inbound|9080||", "peer.address": "10.0.0.3", "response_flags": "-", "error": "true"} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
	res := c.reqs[0].GetResourceSpans()[0].GetResource()
	if kv := res.GetAttributes()[0]; kv.GetKey() != "service.name" || kv.GetValue().GetStringValue() != "productpage.default" {
		t.Errorf("resource %v", res)
	}
	if tr.Exported() != 1 || tr.Dropped() != 0 || tr.ExportFailures() != 0 {
		t.Errorf("exported %d dropped %d failed %d", tr.Exported(), tr.Dropped(), tr.ExportFailures())
	}
}

// TestQueueBoundAndRun: a full queue drops spans (counted); Run sends a
// full batch without waiting for its interval and stops cleanly.
func TestQueueBoundAndRun(t *testing.T) {
	c := startCollector(t)
	tr := New(Config{QueueSize: 3, BatchSize: 2, FlushInterval: time.Hour})
	f, err := tr.Compile(otelTracing(t, googleGRPC(c.addr), 100))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, rec := serve(t, f, nil)
		f.Observe(rec)
	}
	if tr.Dropped() != 2 {
		t.Errorf("dropped %d, want 2", tr.Dropped())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tr.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.spans()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d spans exported, want 3", len(c.spans()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCompileErrors(t *testing.T) {
	tr := newTracer(t, Config{})
	zipkin, _ := anypb.New(&tracev3.ZipkinConfig{CollectorCluster: "zipkin", CollectorEndpoint: "/api/v2/spans"})
	httpOtel, _ := anypb.New(&tracev3.OpenTelemetryConfig{HttpService: &corev3.HttpService{HttpUri: &corev3.HttpUri{
		Uri: "http://c/v1/traces", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}, Timeout: nil}}})
	for _, tc := range []struct {
		name string
		tr   *hcmv3.HttpConnectionManager_Tracing
		want string
	}{
		{"no provider", &hcmv3.HttpConnectionManager_Tracing{}, "no provider"},
		{"zipkin", &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: zipkin}}}, "unsupported tracer type"},
		{"otlp http", &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "otel",
			ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: httpOtel}}}, "OTLP/HTTP export is not supported"},
		{"envoy_grpc without dialer", otelTracing(t, &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "outbound|4317||otel.istio-system.svc.cluster.local"}}}, 1), "no cluster dialer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.Compile(tc.tr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestEnvoyGRPCThroughDial: envoy_grpc collectors are dialled through
// Config.Dial with their cluster name.
func TestEnvoyGRPCThroughDial(t *testing.T) {
	c := startCollector(t)
	var mu sync.Mutex
	var dialled []string
	tr := newTracer(t, Config{Dial: func(ctx context.Context, cluster string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, cluster)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "tcp", c.addr)
	}})
	const cluster = "outbound|4317||otel.istio-system.svc.cluster.local"
	f, err := tr.Compile(otelTracing(t, &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
		EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster, Authority: "otel.istio-system.svc.cluster.local"}}}, 100))
	if err != nil {
		t.Fatal(err)
	}
	_, rec := serve(t, f, nil)
	f.Observe(rec)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	if len(c.spans()) != 1 || len(dialled) == 0 || dialled[0] != cluster {
		t.Errorf("spans %d, dialled %q", len(c.spans()), dialled)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("00-"+traceHex+"-"+parentHex+"-01", traceHex+"-"+parentHex+"-1", traceHex, parentHex)
	f.Add("ff-0-0-0", "0", "", "")
	f.Fuzz(func(t *testing.T, tp, b3, tid, sid string) {
		h := http.Header{"Traceparent": {tp}, "B3": {b3}, "X-B3-Traceid": {tid}, "X-B3-Spanid": {sid}}
		sc, ok := Extract(h)
		if ok && !sc.Valid() {
			t.Fatalf("invalid context accepted: %+v", sc)
		}
		if ok {
			out := http.Header{}
			Inject(out, sc, [8]byte{})
			back, ok := Extract(out)
			if !ok || back.TraceID != sc.TraceID || back.SpanID != sc.SpanID {
				t.Fatalf("round trip %+v -> %v -> %+v", sc, out, back)
			}
		}
	})
}
