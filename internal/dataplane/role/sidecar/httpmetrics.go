package sidecar

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	dphttp "github.com/trellismesh/trellis/internal/dataplane/http"
)

// httpLimitMetrics exports the connection managers' limit counters
// (dphttp.Stat) on /stats/prometheus under the names Envoy's Prometheus
// output gives them: a connection manager statistic
// http.<stat_prefix>.<name> is envoy_http_<name> with the label
// envoy_http_conn_manager_prefix (Envoy's default tag extractor); a codec
// statistic http1.<name> or http2.<name> is envoy_http1_<name> or
// envoy_http2_<name>, here also labelled with the connection manager's
// prefix. For example:
//
//	envoy_http_downstream_cx_protocol_error{envoy_http_conn_manager_prefix="inbound_0.0.0.0_8080"}
//	envoy_http_downstream_rq_header_timeout{...}
//	envoy_http2_inbound_empty_frames_flood{...}
type httpLimitMetrics struct {
	byStat []*prometheus.CounterVec // indexed by dphttp.Stat
}

var _ dphttp.StatsSink = (*httpLimitMetrics)(nil)

// httpLimitLabel is Envoy's tag for a connection manager's stat_prefix.
const httpLimitLabel = "envoy_http_conn_manager_prefix"

func newHTTPLimitMetrics(reg prometheus.Registerer) (*httpLimitMetrics, error) {
	m := &httpLimitMetrics{}
	for _, s := range dphttp.Stats() {
		name := s.String()
		prom := "envoy_http_" + name
		if strings.HasPrefix(name, "http1.") || strings.HasPrefix(name, "http2.") {
			prom = "envoy_" + name
		}
		prom = strings.ReplaceAll(prom, ".", "_")
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: prom,
			Help: "Envoy's " + name + ": requests refused or connections closed at this limit."}, []string{httpLimitLabel})
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("http limit metrics: %w", err)
		}
		m.byStat = append(m.byStat, c)
	}
	return m, nil
}

// Count implements dphttp.StatsSink.
func (m *httpLimitMetrics) Count(prefix string, s dphttp.Stat) {
	if int(s) < len(m.byStat) {
		m.byStat[s].WithLabelValues(prefix).Inc()
	}
}
