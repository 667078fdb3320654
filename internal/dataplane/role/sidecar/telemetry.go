package sidecar

import (
	"context"
	"log/slog"
	"net"
	"sync"

	dphttp "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry/accesslog"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry/tracing"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
)

// telemetryOut is what the sidecar writes besides metrics: the access
// logs and the tracer, shared by every connection manager and tcp proxy
// and flushed by run.
type telemetryOut struct {
	logs   *accesslog.Logs
	tracer *tracing.Tracer
}

// newTelemetryOut builds the access logs and the tracer (whose collectors
// are dialled through the cluster manager) and registers their counters
// with the proxy's metrics. It does no I/O.
func newTelemetryOut(clusters *manager.Manager, metrics *telemetry.Metrics, log *slog.Logger) (*telemetryOut, error) {
	t := &telemetryOut{
		logs: accesslog.New(accesslog.Config{Logger: log}),
		tracer: tracing.New(tracing.Config{Logger: log, Dial: func(ctx context.Context, cluster string) (net.Conn, error) {
			return clusters.Dial(ctx, cluster, nil)
		}}),
	}
	for _, c := range []struct {
		name, help string
		f          func() uint64
	}{
		{"trellis_access_log_lines_dropped_total", "Access log lines dropped because their file's buffer was full.", t.logs.Dropped},
		{"trellis_access_log_write_errors_total", "Failed access log file opens and writes.", t.logs.WriteErrors},
		{"trellis_tracing_spans_dropped_total", "Spans dropped because the export queue was full.", t.tracer.Dropped},
		{"trellis_tracing_spans_exported_total", "Spans the trace collectors accepted.", t.tracer.Exported},
		{"trellis_tracing_export_failures_total", "Spans lost to failed exports or rejected by the collector.", t.tracer.ExportFailures},
	} {
		if err := metrics.CounterFunc(c.name, c.help, c.f); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// filters are the connection managers' access logger and tracer factories.
func (t *telemetryOut) filters() filter.Registry {
	reg := filter.Registry{dphttp.TracingTypeURL: t.tracer.Factory()}
	for _, u := range accesslog.TypeURLs {
		reg[u] = t.logs.Factory()
	}
	return reg
}

// run flushes the access logs and exports spans until ctx ends, then
// flushes and closes both.
func (t *telemetryOut) run(ctx context.Context) error {
	var wg sync.WaitGroup
	var logErr error
	wg.Go(func() { logErr = t.logs.Run(ctx) })
	err := t.tracer.Run(ctx)
	wg.Wait()
	if err != nil {
		return err
	}
	return logErr
}
