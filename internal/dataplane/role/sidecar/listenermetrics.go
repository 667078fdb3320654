package sidecar

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// listenerMetrics counts what the listener manager reports (Envoy's
// listener statistics), on the proxy's /stats/prometheus:
//
//	trellis_listener_tls_handshake_failures_total{listener,reason}  downstream TLS handshakes that failed
//	                                       (reason: no_client_certificate, unknown_ca, certificate_expired, ...)
//	trellis_listener_filter_closed_total{listener,reason}            closed by the listener filters
//	envoy_listener_downstream_pre_cx_timeout{listener}                 closed by the listener filters at a timeout
//	                                       (listener_filters_timeout, or the handshake timeout: C6)
//	envoy_listener_downstream_cx_overflow{listener}                    closed at the connection limit (C8)
//	envoy_listener_no_filter_chain_match{listener}                     no filter chain matched
//
// The envoy_listener_* names are Envoy's listener statistics as its
// Prometheus output names them (the label is the listener's name here).
type listenerMetrics struct {
	tlsFailed, filterClosed *prometheus.CounterVec
	overflow, noChain       *prometheus.CounterVec
	preTimeout              *prometheus.CounterVec
}

var (
	_ listener.Metrics    = (*listenerMetrics)(nil)
	_ listener.TLSMetrics = (*listenerMetrics)(nil)
)

func newListenerMetrics(reg prometheus.Registerer) (*listenerMetrics, error) {
	m := &listenerMetrics{
		tlsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_listener_tls_handshake_failures_total",
			Help: "Downstream TLS handshakes that failed, by listener and reason."}, []string{"listener", "reason"}),
		filterClosed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_listener_filter_closed_total",
			Help: "Connections closed by the listener filters, by listener and reason."}, []string{"listener", "reason"}),
		overflow: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_cx_overflow",
			Help: "Connections closed at accept because the socket is at its connection limit."}, []string{"listener"}),
		noChain: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_no_filter_chain_match",
			Help: "Connections no filter chain matched."}, []string{"listener"}),
		preTimeout: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "envoy_listener_downstream_pre_cx_timeout",
			Help: "Connections closed by the listener filters at a timeout (listener_filters_timeout or the handshake timeout)."}, []string{"listener"}),
	}
	for _, c := range []prometheus.Collector{m.tlsFailed, m.filterClosed, m.overflow, m.noChain, m.preTimeout} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("listener metrics: %w", err)
		}
	}
	return m, nil
}

func (m *listenerMetrics) TLSHandshakeFailed(l, reason string) {
	m.tlsFailed.WithLabelValues(l, reason).Inc()
}

func (m *listenerMetrics) FilterClosed(l, reason string) {
	m.filterClosed.WithLabelValues(l, reason).Inc()
	if reason == "timeout" || reason == "handshake_timeout" {
		m.preTimeout.WithLabelValues(l).Inc()
	}
}

func (m *listenerMetrics) Overflow(l string)      { m.overflow.WithLabelValues(l).Inc() }
func (m *listenerMetrics) NoFilterChain(l string) { m.noChain.WithLabelValues(l).Inc() }
