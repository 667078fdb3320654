package http_test

import (
	"context"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/route"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry/accesslog"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry/tracing"
)

// otlpCollector is a real OTLP/gRPC trace collector on loopback.
type otlpCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	got  []*tracepb.Span
}

func (c *otlpCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.got = append(c.got, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *otlpCollector) spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.got...)
}

func startCollector(t testing.TB) *otlpCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &otlpCollector{addr: ln.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return c
}

// TestTracingAndAccessLog runs a real request through a compiled
// connection manager with the tracer and a file access logger from the
// registry: the upstream request joins the caller's W3C trace under a new
// span (also in B3 form), the span reaches a real OTLP collector with the
// caller's span as parent, and the access log has the request's line.
func TestTracingAndAccessLog(t *testing.T) {
	collector := startCollector(t)
	tracer := tracing.New(tracing.Config{})
	t.Cleanup(func() { tracer.Close() })
	logs := accesslog.New(accesslog.Config{})
	t.Cleanup(func() { logs.Close() })
	logPath := filepath.Join(t.TempDir(), "access.log")

	h, rc := meshConfig(t)
	otel, err := anypb.New(&tracev3.OpenTelemetryConfig{ServiceName: "sleep.default", GrpcService: &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: collector.addr, StatPrefix: "otel"}}}})
	if err != nil {
		t.Fatal(err)
	}
	h.Tracing = &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling: &typev3.Percent{Value: 0}, // only the caller's decision samples
		Provider:       &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otel}},
	}
	fal, err := anypb.New(&filev3.FileAccessLog{Path: logPath, AccessLogFormat: &filev3.FileAccessLog_Format{
		Format: "%REQ(:METHOD)% %REQ(:PATH)% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %TRACE_ID%\n"}})
	if err != nil {
		t.Fatal(err)
	}
	h.AccessLog = []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: fal}}}

	tbl, err := route.Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	routes := &hcm.RouteTables{}
	routes.Set(rc.GetName(), tbl)
	up := newTestUpstream(t)
	backends := map[string]*backend{}
	for _, c := range []string{reviewsV1, reviewsV2, reviewsV3, ratingsV1, ratingsV2, detailsV1, detailsV2, echoAll} {
		backends[c] = newBackend(t, c)
		up.add(c, backends[c].addr(), false)
	}
	reg := filter.Registry{hcm.TracingTypeURL: tracer.Factory()}
	for _, u := range accesslog.TypeURLs {
		reg[u] = logs.Factory()
	}
	p := serveManager(t, h, hcm.Deps{Routes: routes, Upstream: up, Filters: reg})

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	resp := p.do(t, client(t, false), "GET", "reviews:9080", "/reviews/0", map[string][]string{
		"Traceparent": {"00-" + traceID + "-" + callerSpan + "-01"}, "X-Request-Id": {"req-7"}}, nil)
	s := decodeSeen(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	hdr := func(k string) string {
		if vs := s.Header[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	tp := strings.Split(hdr("Traceparent"), "-")
	if len(tp) != 4 || tp[1] != traceID || tp[2] == callerSpan || tp[3] != "01" {
		t.Fatalf("upstream traceparent %q", hdr("Traceparent"))
	}
	span := tp[2]
	if hdr("X-B3-Traceid") != traceID || hdr("X-B3-Spanid") != span || hdr("X-B3-Parentspanid") != callerSpan ||
		hdr("X-B3-Sampled") != "1" || hdr("X-Request-Id") != "req-7" {
		t.Errorf("upstream headers %v", s.Header)
	}
	rec := p.rec.wait(t, byPath("/reviews/0"))
	if hex.EncodeToString(rec.TraceID[:]) != traceID || hex.EncodeToString(rec.SpanID[:]) != span || !rec.TraceSampled {
		t.Errorf("record trace %x span %x sampled %v", rec.TraceID, rec.SpanID, rec.TraceSampled)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	deadline := time.Now().Add(waitFor)
	for len(collector.spans()) == 0 && time.Now().Before(deadline) {
		tracer.Flush(ctx) // the observer runs as the request ends: poll
		time.Sleep(5 * time.Millisecond)
	}
	spans := collector.spans()
	if len(spans) != 1 {
		t.Fatalf("%d spans at the collector, want 1", len(spans))
	}
	sp := spans[0]
	if hex.EncodeToString(sp.GetTraceId()) != traceID || hex.EncodeToString(sp.GetSpanId()) != span ||
		hex.EncodeToString(sp.GetParentSpanId()) != callerSpan {
		t.Errorf("span trace %x span %x parent %x", sp.GetTraceId(), sp.GetSpanId(), sp.GetParentSpanId())
	}
	if rec.Route.Decorator == nil {
		t.Fatal("route has no decorator")
	}
	if want := rec.Route.Decorator.Operation; want == "" || sp.GetName() != want {
		t.Errorf("span name %q, want the route's decorator %q", sp.GetName(), want)
	}

	logs.Flush()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if want := "GET /reviews/0 200 " + rec.Cluster + " " + traceID + "\n"; string(b) != want {
		t.Errorf("access log %q, want %q", b, want)
	}
}

// TestTelemetryCompileErrors: an unknown access logger type, a bad format
// and an access log filter are NACKs naming the field; tracing with a
// provider needs a tracer in the registry.
func TestTelemetryCompileErrors(t *testing.T) {
	logs := accesslog.New(accesslog.Config{})
	t.Cleanup(func() { logs.Close() })
	reg := filter.Registry{accesslog.FileTypeURL: logs.Factory()}
	bad, _ := anypb.New(&filev3.FileAccessLog{Path: "/dev/null", AccessLogFormat: &filev3.FileAccessLog_Format{Format: "%NOPE%"}})
	good, _ := anypb.New(&filev3.FileAccessLog{Path: "/dev/null"})
	unknown, _ := anypb.New(&wrapperspb.StringValue{})
	otel, _ := anypb.New(&tracev3.OpenTelemetryConfig{})
	for _, tc := range []struct {
		name   string
		mutate func(h *hcmv3.HttpConnectionManager)
		want   string
	}{
		{"bad format", func(h *hcmv3.HttpConnectionManager) {
			h.AccessLog = []*accesslogv3.AccessLog{{Name: "file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: bad}}}
		}, `access_log[0] (file): format: %NOPE%: unknown command operator`},
		{"unknown type", func(h *hcmv3.HttpConnectionManager) {
			h.AccessLog = []*accesslogv3.AccessLog{{Name: "x", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: unknown}}}
		}, `access_log[0] (x): unsupported access logger type`},
		{"filter", func(h *hcmv3.HttpConnectionManager) {
			h.AccessLog = []*accesslogv3.AccessLog{{Name: "f", Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{NotHealthCheckFilter: &accesslogv3.NotHealthCheckFilter{}}},
				ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: good}}}
		}, `access_log[0] (f).filter: access log filters are not supported`},
		{"no tracer", func(h *hcmv3.HttpConnectionManager) {
			h.Tracing = &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "otel",
				ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otel}}}
		}, `tracing: this proxy has no tracer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := meshConfig(t)
			tc.mutate(h)
			_, err := hcm.Compile(h, hcm.Deps{Routes: &hcm.RouteTables{}, Upstream: newTestUpstream(t), Filters: reg})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestGRPCStatusInRecord: the record carries the grpc-status of the
// response trailers, also when it is not OK under an HTTP 200.
func TestGRPCStatusInRecord(t *testing.T) {
	ms := startMesh(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	srv.RegisterService(echoDesc(), &echoServer{calls: map[string]int{}})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	ms.up.set(echoAll, ln.Addr().String(), true)
	conn, err := grpc.NewClient("passthrough:///"+ms.proxy.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("echo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	if err := conn.Invoke(context.Background(), "/trellis.test.Echo/Unary", wrapperspb.String("fail:permission"), new(wrapperspb.StringValue)); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %v, want PermissionDenied", err)
	}
	rec := ms.proxy.rec.wait(t, byPath("/trellis.test.Echo/Unary"))
	if rec.ResponseCode != 200 || !rec.GRPCStatusSet || rec.GRPCStatus != int(codes.PermissionDenied) {
		t.Errorf("record: HTTP %d, grpc-status %d (set %v)", rec.ResponseCode, rec.GRPCStatus, rec.GRPCStatusSet)
	}
}
