package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus metrics, with Istio's names where
// Istio has one. The type label is cds, eds, lds or rds.
type metrics struct {
	connected      prometheus.Gauge
	pushes         *prometheus.CounterVec
	typePushTime   *prometheus.HistogramVec
	sendTime       prometheus.Histogram
	convergence    prometheus.Histogram
	rejects        *prometheus.CounterVec
	expiredNonce   *prometheus.CounterVec
	internalErrors *prometheus.CounterVec
	debounceTime   prometheus.Histogram
	scopedSkips    prometheus.Counter
	sendTimeouts   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	// Buckets in seconds, from a millisecond to a minute.
	latencyBuckets := []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60}
	typ := []string{"type"}
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pilot_xds", Help: "Number of proxies connected to this control plane over ADS.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_pushes", Help: "Number of xDS responses sent, by type.",
		}, typ),
		typePushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pilot_xds_push_time", Help: "Time in seconds to generate and send one type to one proxy.",
			Buckets: latencyBuckets,
		}, typ),
		sendTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pilot_xds_send_time", Help: "Time in seconds to send one generated response.",
			Buckets: latencyBuckets,
		}),
		convergence: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pilot_proxy_convergence_time", Help: "Time in seconds from a change until the proxy ACKs the push carrying it.",
			Buckets: []float64{.1, .5, 1, 3, 5, 10, 20, 30},
		}),
		rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_rejects", Help: "Number of xDS responses rejected (NACKed) by proxies, by type.",
		}, typ),
		expiredNonce: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_xds_expired_nonce", Help: "Number of requests with a stale nonce, ignored, by type.",
		}, typ),
		internalErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pilot_total_xds_internal_errors", Help: "Number of failed generations, by type.",
		}, typ),
		debounceTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pilot_debounce_time", Help: "Delay in seconds between the first change entering debouncing and the merged push.",
			Buckets: []float64{.01, .1, 1, 3, 5, 10, 20, 30},
		}),
		scopedSkips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pilot_xds_scoped_skips", Help: "Number of per-proxy pushes skipped because the change could not affect the proxy.",
		}),
		sendTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pilot_xds_send_timeouts", Help: "Number of streams closed because a send exceeded the send timeout.",
		}),
	}
	for _, c := range []prometheus.Collector{m.connected, m.pushes, m.typePushTime, m.sendTime, m.convergence,
		m.rejects, m.expiredNonce, m.internalErrors, m.debounceTime, m.scopedSkips, m.sendTimeouts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return m, nil
}
