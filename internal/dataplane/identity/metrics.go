package identity

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics receives the manager's events; calls come from Run's goroutine.
type Metrics interface {
	// Issued counts the first certificate, Renewed each later one.
	Issued()
	Renewed()
	// Failed counts a failed request (transport, CA refusal or a rejected
	// response).
	Failed()
	// Expiry reports the NotAfter of the certificate now served.
	Expiry(notAfter time.Time)
}

type nopMetrics struct{}

func (nopMetrics) Issued()          {}
func (nopMetrics) Renewed()         {}
func (nopMetrics) Failed()          {}
func (nopMetrics) Expiry(time.Time) {}

// Prometheus metrics names.
const (
	MetricRequests = "trellis_identity_certificate_requests_total"
	MetricExpiry   = "trellis_identity_certificate_expiry_timestamp_seconds"
)

type promMetrics struct {
	issued, renewed, failed prometheus.Counter
	expiry                  prometheus.Gauge
}

// NewPrometheus registers the manager's metrics in reg:
// trellis_identity_certificate_requests_total{result="issued|renewed|failed"}
// and trellis_identity_certificate_expiry_timestamp_seconds (the served
// certificate's NotAfter, Unix seconds; 0 before the first).
func NewPrometheus(reg prometheus.Registerer) (Metrics, error) {
	req := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricRequests,
		Help: "Workload certificate requests to the mesh CA by result: issued (first certificate), renewed, failed.",
	}, []string{"result"})
	exp := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: MetricExpiry,
		Help: "Expiry (NotAfter, Unix seconds) of the workload certificate being served.",
	})
	for _, c := range []prometheus.Collector{req, exp} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return &promMetrics{
		issued: req.WithLabelValues("issued"), renewed: req.WithLabelValues("renewed"),
		failed: req.WithLabelValues("failed"), expiry: exp,
	}, nil
}

func (p *promMetrics) Issued()            { p.issued.Inc() }
func (p *promMetrics) Renewed()           { p.renewed.Inc() }
func (p *promMetrics) Failed()            { p.failed.Inc() }
func (p *promMetrics) Expiry(t time.Time) { p.expiry.Set(float64(t.Unix())) }
