package tracing

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
)

// Type URLs.
const (
	// TypeURL is the type of the connection manager's tracing settings
	// (HttpConnectionManager.tracing) packed in an Any: the key the
	// connection manager looks the tracer's factory up by.
	TypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing"
	// OpenTelemetryTypeURL is the only provider supported.
	OpenTelemetryTypeURL = "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig"
)

// DefaultMaxPathTagLength is Envoy's default for the http.url attribute.
const DefaultMaxPathTagLength = 256

// million is 100% in the sampling draws' unit.
const million = 1_000_000

// Filter is a compiled HttpConnectionManager.tracing: as an HTTP filter
// (placed first) it joins or starts the request's trace and propagates it
// upstream; as the connection manager's Observer it ends the span and
// queues it for export.
type Filter struct {
	t   *Tracer
	exp *exporter
	// Sampling percentages in millionths.
	random, client, overall uint64
	maxPathLen              int
	tags                    []customTag
}

type customTag struct {
	name    string
	literal string
	header  string // canonical request header name
	def     string // default when the header is absent
}

// Factory returns the factory of tracing filters, to register under
// TypeURL.
func (t *Tracer) Factory() filter.Factory {
	return filter.FactoryFunc(func(_ string, config *anypb.Any) (filter.Filter, error) {
		tr := &hcmv3.HttpConnectionManager_Tracing{}
		if err := anypb.UnmarshalTo(config, tr, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("tracing: %w", err)
		}
		return t.Compile(tr)
	})
}

// Compile builds the filter of a connection manager's tracing settings.
// Errors name the field. Supported: random_sampling, client_sampling,
// overall_sampling (Envoy's defaults, 100%), max_path_tag_length, literal
// and request_header custom_tags (other kinds are skipped), and the
// envoy.tracers.opentelemetry provider exporting over OTLP/gRPC
// (grpc_service envoy_grpc or google_grpc without TLS).
func (t *Tracer) Compile(tr *hcmv3.HttpConnectionManager_Tracing) (*Filter, error) {
	if err := pgv.ValidateAll(tr); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	f := &Filter{
		t:          t,
		random:     percent(tr.GetRandomSampling()),
		client:     percent(tr.GetClientSampling()),
		overall:    percent(tr.GetOverallSampling()),
		maxPathLen: DefaultMaxPathTagLength,
	}
	if v := tr.GetMaxPathTagLength(); v != nil {
		f.maxPathLen = int(v.GetValue())
	}
	for _, ct := range tr.GetCustomTags() {
		switch {
		case ct.GetLiteral() != nil:
			f.tags = append(f.tags, customTag{name: ct.GetTag(), literal: ct.GetLiteral().GetValue()})
		case ct.GetRequestHeader() != nil:
			h := ct.GetRequestHeader()
			f.tags = append(f.tags, customTag{name: ct.GetTag(), header: http.CanonicalHeaderKey(h.GetName()), def: h.GetDefaultValue()})
		}
	}
	p := tr.GetProvider()
	if p == nil {
		return nil, errors.New("tracing.provider: no provider (this proxy has no bootstrap tracer)")
	}
	if tc := p.GetTypedConfig(); tc.GetTypeUrl() != OpenTelemetryTypeURL {
		return nil, fmt.Errorf("tracing.provider (%s): unsupported tracer type %q; only %s", p.GetName(), tc.GetTypeUrl(), OpenTelemetryTypeURL)
	}
	oc := &tracev3.OpenTelemetryConfig{}
	if err := anypb.UnmarshalTo(p.GetTypedConfig(), oc, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("tracing.provider (%s): %w", p.GetName(), err)
	}
	key, err := collector(oc)
	if err != nil {
		return nil, fmt.Errorf("tracing.provider (%s): %w", p.GetName(), err)
	}
	if f.exp, err = t.exporter(key); err != nil {
		return nil, fmt.Errorf("tracing.provider (%s): %w", p.GetName(), err)
	}
	return f, nil
}

// collector reads where an OpenTelemetryConfig exports to.
func collector(oc *tracev3.OpenTelemetryConfig) (exporterKey, error) {
	switch {
	case oc.GetHttpService() != nil:
		return exporterKey{}, errors.New("http_service: OTLP/HTTP export is not supported; use grpc_service")
	case oc.GetSampler() != nil:
		return exporterKey{}, errors.New("sampler: sampler extensions are not supported")
	case oc.GetExporter() != nil:
		return exporterKey{}, errors.New("exporter: exporter extensions are not supported; use grpc_service")
	}
	gs := oc.GetGrpcService()
	if gs == nil {
		return exporterKey{}, errors.New("grpc_service: required")
	}
	k := exporterKey{service: oc.GetServiceName(), timeoutMS: gs.GetTimeout().AsDuration().Milliseconds()}
	if k.service == "" {
		k.service = "unknown_service:trellis"
	}
	switch ts := gs.GetTargetSpecifier().(type) {
	case *corev3.GrpcService_EnvoyGrpc_:
		k.cluster, k.target = ts.EnvoyGrpc.GetClusterName(), ts.EnvoyGrpc.GetAuthority()
		if k.cluster == "" {
			return exporterKey{}, errors.New("grpc_service.envoy_grpc.cluster_name: required")
		}
	case *corev3.GrpcService_GoogleGrpc_:
		g := ts.GoogleGrpc
		if g.GetChannelCredentials() != nil || g.GetCallCredentials() != nil {
			return exporterKey{}, errors.New("grpc_service.google_grpc: channel and call credentials are not supported")
		}
		k.target = g.GetTargetUri()
		if k.target == "" {
			return exporterKey{}, errors.New("grpc_service.google_grpc.target_uri: required")
		}
	default:
		return exporterKey{}, errors.New("grpc_service: envoy_grpc or google_grpc required")
	}
	if len(gs.GetInitialMetadata()) > 0 {
		return exporterKey{}, errors.New("grpc_service.initial_metadata: not supported")
	}
	return k, nil
}

// percent converts an Envoy Percent (nil: 100%) to millionths.
func percent(p *typev3.Percent) uint64 {
	if p == nil {
		return million
	}
	v := p.GetValue()
	switch {
	case v <= 0:
		return 0
	case v >= 100:
		return million
	}
	return uint64(v * 10_000)
}

// draw reports a random draw under p millionths.
func (f *Filter) draw(p uint64) bool {
	if p >= million {
		return true
	}
	return f.t.cfg.Random()%million < p
}

// Wrap implements filter.Filter.
func (f *Filter) Wrap(next filter.Handler) filter.Handler {
	return filter.HandlerFunc(func(s *filter.Stream) {
		f.start(s)
		next.ServeStream(s)
	})
}

// start joins the incoming trace (or starts one), decides sampling, records
// the span's ids and propagates them upstream.
func (f *Filter) start(s *filter.Stream) {
	h := s.Request.Header
	parent, joined := Extract(h)
	var sampled bool
	switch {
	case h1wire.Get(h, headerForceTrace) != "":
		sampled = true
	case joined && parent.SampledSet:
		sampled = parent.Sampled
	default:
		if d, ok := ExtractDecision(h); ok && !joined {
			sampled = d
			break
		}
		if h1wire.Get(h, headerClientTrace) != "" {
			sampled = f.draw(f.client)
		} else {
			sampled = f.draw(f.random)
		}
		sampled = sampled && f.draw(f.overall)
	}
	sc := SpanContext{Sampled: sampled, SampledSet: true, TraceState: parent.TraceState}
	var parentID [8]byte
	if joined {
		sc.TraceID, parentID = parent.TraceID, parent.SpanID
	} else {
		for sc.TraceID == ([16]byte{}) {
			putUint64(sc.TraceID[:8], f.t.cfg.Random())
			putUint64(sc.TraceID[8:], f.t.cfg.Random())
		}
	}
	for sc.SpanID == ([8]byte{}) {
		putUint64(sc.SpanID[:], f.t.cfg.Random())
	}
	rec := &s.Record
	rec.TraceID, rec.SpanID, rec.ParentSpanID, rec.TraceSampled = sc.TraceID, sc.SpanID, parentID, sampled
	Inject(h, sc, parentID)
}

func putUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// Observe ends the span of a sampled request and queues it for export
// (the connection manager's Observer).
func (f *Filter) Observe(r *filter.Record) {
	if !r.TraceSampled || r.TraceID == ([16]byte{}) {
		return
	}
	f.exp.add(f.span(r))
}

// span builds the OTLP span of a finished request: named by the route's
// decorator operation (Istio's "host:port/*"), else the authority and
// path; SERVER on the inbound side, CLIENT outbound; with Envoy's tag
// names as attributes.
func (f *Filter) span(r *filter.Record) *tracepb.Span {
	name := ""
	if r.Route != nil && r.Route.Decorator != nil {
		name = r.Route.Decorator.Operation
	}
	path, _, _ := strings.Cut(r.Path, "?")
	if name == "" {
		name = r.Authority + path
	}
	kind := tracepb.Span_SPAN_KIND_CLIENT
	if inbound(r.Listener, r.Cluster) {
		kind = tracepb.Span_SPAN_KIND_SERVER
	}
	sp := &tracepb.Span{
		TraceId:           append([]byte(nil), r.TraceID[:]...),
		SpanId:            append([]byte(nil), r.SpanID[:]...),
		Name:              name,
		Kind:              kind,
		StartTimeUnixNano: uint64(r.Start.UnixNano()),
		EndTimeUnixNano:   uint64(r.Start.Add(r.Duration).UnixNano()),
		Flags:             0x100 | 1, // parent-is-remote known; sampled
	}
	if r.ParentSpanID != ([8]byte{}) {
		sp.ParentSpanId = append([]byte(nil), r.ParentSpanID[:]...)
		sp.Flags |= 0x200
	}
	scheme := r.Header.Get("X-Forwarded-Proto")
	if scheme == "" {
		scheme = "http"
	}
	url := scheme + "://" + r.Authority + r.Path
	if f.maxPathLen > 0 && len(url) > f.maxPathLen {
		url = url[:f.maxPathLen]
	}
	attrs := []*commonpb.KeyValue{
		strAttr("component", "proxy"),
		strAttr("http.method", r.Method),
		strAttr("http.url", url),
		strAttr("http.protocol", r.Protocol),
		strAttr("http.status_code", strconv.Itoa(r.ResponseCode)),
		strAttr("response_flags", r.Flags.String()),
		strAttr("upstream_cluster", orDash(r.Cluster)),
		strAttr("upstream_cluster.name", orDash(r.Cluster)),
		strAttr("upstream_address", orDash(r.UpstreamHost)),
		strAttr("peer.address", r.Source.Addr().String()),
		strAttr("guid:x-request-id", r.RequestID),
		strAttr("user_agent", orDash(r.Header.Get("User-Agent"))),
		strAttr("downstream_cluster", orDash(r.Header.Get("X-Envoy-Downstream-Service-Cluster"))),
		intAttr("request_size", r.BytesReceived),
		intAttr("response_size", r.BytesSent),
	}
	failed := r.ResponseCode >= 500 || r.ResponseCode == 0
	if r.GRPCStatusSet {
		attrs = append(attrs, strAttr("grpc.status_code", strconv.Itoa(r.GRPCStatus)))
		failed = failed || r.GRPCStatus != 0
	}
	for _, t := range f.tags {
		v := t.literal
		if t.header != "" {
			if v = r.Header.Get(t.header); v == "" {
				v = t.def
			}
		}
		attrs = append(attrs, strAttr(t.name, v))
	}
	if failed {
		attrs = append(attrs, strAttr("error", "true"))
		sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
	}
	sp.Attributes = attrs
	return sp
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// inbound tells the inbound side of a sidecar (reported as the server):
// Istio's inbound clusters and the virtualInbound listener.
func inbound(listenerName, cluster string) bool {
	return strings.HasPrefix(cluster, "inbound|") || strings.HasPrefix(cluster, "InboundPassthroughCluster") ||
		listenerName == "virtualInbound"
}
