package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Defaults of Config.
const (
	DefaultQueueSize     = 2048
	DefaultBatchSize     = 512
	DefaultFlushInterval = 5 * time.Second
	DefaultExportTimeout = 10 * time.Second
)

// Config configures a Tracer.
type Config struct {
	// Dial connects to a cluster (the cluster manager's Dial); required
	// for collectors named by envoy_grpc.cluster_name.
	Dial func(ctx context.Context, cluster string) (net.Conn, error)
	// Random draws span and trace ids and sampling draws (default
	// math/rand/v2).
	Random func() uint64
	// QueueSize bounds the spans waiting per collector; spans beyond it
	// are dropped and counted (0: DefaultQueueSize).
	QueueSize int
	// BatchSize is the most spans per export call; a full batch is sent
	// at once (0: DefaultBatchSize).
	BatchSize int
	// FlushInterval is how often queued spans are sent
	// (0: DefaultFlushInterval).
	FlushInterval time.Duration
	// ExportTimeout bounds one export call (0: DefaultExportTimeout).
	ExportTimeout time.Duration
	Logger        *slog.Logger
}

// Tracer owns a proxy's span exporters: the tracing filters compiled from
// it queue finished spans, Run sends them to the OTLP collectors. One
// exporter (one gRPC channel) per collector and service name, shared by
// every connection manager that names them.
type Tracer struct {
	cfg  Config
	kick chan struct{}

	mu        sync.Mutex
	exporters map[exporterKey]*exporter
	closed    bool

	dropped, exported, failed atomic.Uint64
}

// New returns a Tracer; it does no I/O.
func New(cfg Config) *Tracer {
	if cfg.Random == nil {
		cfg.Random = rand.Uint64
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.ExportTimeout <= 0 {
		cfg.ExportTimeout = DefaultExportTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Tracer{cfg: cfg, kick: make(chan struct{}, 1), exporters: map[exporterKey]*exporter{}}
}

// Dropped counts spans dropped because their queue was full.
func (t *Tracer) Dropped() uint64 { return t.dropped.Load() }

// Exported counts spans the collectors accepted.
func (t *Tracer) Exported() uint64 { return t.exported.Load() }

// ExportFailures counts spans lost to failed export calls or rejected by
// the collector.
func (t *Tracer) ExportFailures() uint64 { return t.failed.Load() }

// Run sends queued spans every FlushInterval, and at once when a batch
// fills up, until ctx ends; then it sends what is left (within
// ExportTimeout) and closes the channels.
func (t *Tracer) Run(ctx context.Context) error {
	tick := time.NewTicker(t.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), t.cfg.ExportTimeout)
			t.Flush(fctx)
			cancel()
			return t.Close()
		case <-tick.C:
		case <-t.kick:
		}
		t.Flush(ctx)
	}
}

// Flush sends every queued span.
func (t *Tracer) Flush(ctx context.Context) {
	t.mu.Lock()
	exps := make([]*exporter, 0, len(t.exporters))
	for _, e := range t.exporters {
		exps = append(exps, e)
	}
	t.mu.Unlock()
	for _, e := range exps {
		for {
			batch := e.take(t.cfg.BatchSize)
			if len(batch) == 0 {
				break
			}
			t.export(ctx, e, batch)
		}
	}
}

// Close closes the collectors' channels; spans queued afterwards are
// dropped.
func (t *Tracer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	var errs []error
	for k, e := range t.exporters {
		errs = append(errs, e.conn.Close())
		delete(t.exporters, k)
	}
	return errors.Join(errs...)
}

func (t *Tracer) export(ctx context.Context, e *exporter, spans []*tracepb.Span) {
	timeout := t.cfg.ExportTimeout
	if ms := e.key.timeoutMS; ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: e.resource,
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: scopeName},
			Spans: spans,
		}},
	}}}
	resp, err := e.client.Export(ctx, req)
	if err != nil {
		t.failed.Add(uint64(len(spans)))
		t.cfg.Logger.Debug("exporting spans", "collector", e.key.target, "spans", len(spans), "error", err)
		return
	}
	rejected := uint64(max(resp.GetPartialSuccess().GetRejectedSpans(), 0))
	rejected = min(rejected, uint64(len(spans)))
	t.failed.Add(rejected)
	t.exported.Add(uint64(len(spans)) - rejected)
}

// scopeName is the instrumentation scope of the spans.
const scopeName = "trellis"

// exporterKey identifies a collector and the resource its spans carry.
type exporterKey struct {
	cluster   string // envoy_grpc: dialled through Config.Dial
	target    string // the gRPC target (google_grpc) or authority
	service   string // service.name
	timeoutMS int64
}

// exporter queues the spans of one collector.
type exporter struct {
	key      exporterKey
	conn     *grpc.ClientConn
	client   coltracepb.TraceServiceClient
	resource *resourcepb.Resource
	t        *Tracer

	mu    sync.Mutex
	queue []*tracepb.Span
}

// exporter returns the shared exporter of k, creating its channel (no I/O:
// gRPC connects on first use).
func (t *Tracer) exporter(k exporterKey) (*exporter, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.exporters[k]; ok {
		return e, nil
	}
	if t.closed {
		return nil, errors.New("tracer is closed")
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	target := k.target
	if k.cluster != "" {
		if t.cfg.Dial == nil {
			return nil, errors.New("envoy_grpc: this proxy has no cluster dialer")
		}
		cluster, dial := k.cluster, t.cfg.Dial
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return dial(ctx, cluster)
		}))
		authority := k.target
		if authority == "" {
			authority = cluster
		}
		opts = append(opts, grpc.WithAuthority(authority))
		target = "passthrough:///" + authority
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("collector channel %q: %w", target, err)
	}
	e := &exporter{
		key:    k,
		conn:   conn,
		client: coltracepb.NewTraceServiceClient(conn),
		t:      t,
		resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			strAttr("service.name", k.service),
			strAttr("telemetry.sdk.name", "trellis"),
			strAttr("telemetry.sdk.language", "go"),
		}},
	}
	t.exporters[k] = e
	return e, nil
}

// add queues a span, or drops it when the queue is full.
func (e *exporter) add(s *tracepb.Span) {
	e.mu.Lock()
	if len(e.queue) >= e.t.cfg.QueueSize {
		e.mu.Unlock()
		e.t.dropped.Add(1)
		return
	}
	e.queue = append(e.queue, s)
	full := len(e.queue) >= e.t.cfg.BatchSize
	e.mu.Unlock()
	if full {
		select {
		case e.t.kick <- struct{}{}:
		default:
		}
	}
}

// take removes up to n queued spans.
func (e *exporter) take(n int) []*tracepb.Span {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.queue) == 0 {
		return nil
	}
	n = min(n, len(e.queue))
	batch := make([]*tracepb.Span, n)
	copy(batch, e.queue)
	e.queue = append(e.queue[:0], e.queue[n:]...)
	return batch
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}
