package telemetry

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// EnvoyCounters is a set of counters kept by Envoy stat name
// ("tcp.rbac.allowed", "http.rbac.istio_dry_run_deny_.shadow_denied",
// "ext_authz.tcp.ok"): the RBAC and ext_authz filters' (rbac.Counters).
type EnvoyCounters interface {
	Names() []string
	Get(name string) uint64
}

// RegisterEnvoyCounters exports c on the proxy's /stats/prometheus as
// Envoy and Istio do: Istio's stat tag extractors for authorization
// (authz_enforce_result "rbac(\.(allowed|denied))", authz_dry_run_action
// "(\.istio_dry_run_(allow|deny)_)", authz_dry_run_result
// "(\.shadow_(allowed|denied))") turn the matched part of the name into a
// label and remove it; the rest, with every character Prometheus does
// not allow replaced by "_", is the metric name after "envoy_". So
// tcp.rbac.allowed is envoy_tcp_rbac{authz_enforce_result="allowed"} and
// tcp.rbac.istio_dry_run_deny_.shadow_denied is
// envoy_tcp_rbac{authz_dry_run_action="deny",authz_dry_run_result="denied"}.
// Counters are read at scrape time; names that appear later are exported
// from then on.
func (m *Metrics) RegisterEnvoyCounters(c EnvoyCounters) error {
	if err := m.registry.Register(envoyCollector{c}); err != nil {
		return fmt.Errorf("registering Envoy counters: %w", err)
	}
	return nil
}

// envoyTag is one of Istio's stat tag extractors: the first group is
// removed from the name, the second is the label's value.
type envoyTag struct {
	name string
	re   *regexp.Regexp
}

var envoyTags = []envoyTag{
	{"authz_enforce_result", regexp.MustCompile(`rbac(\.(allowed|denied))`)},
	{"authz_dry_run_action", regexp.MustCompile(`(\.istio_dry_run_(allow|deny)_)`)},
	{"authz_dry_run_result", regexp.MustCompile(`(\.shadow_(allowed|denied))`)},
}

// envoySeries splits an Envoy stat name into a Prometheus metric name and
// labels. Like Envoy, every extractor reads the original name, and the
// removed parts are cut out afterwards.
func envoySeries(stat string) (string, []string, []string) {
	var keys, values []string
	cut := make([]bool, len(stat))
	for _, t := range envoyTags {
		m := t.re.FindStringSubmatchIndex(stat)
		if m == nil {
			continue
		}
		keys = append(keys, t.name)
		values = append(values, stat[m[4]:m[5]])
		for i := m[2]; i < m[3]; i++ {
			cut[i] = true
		}
	}
	var b strings.Builder
	b.WriteString("envoy_")
	for i := 0; i < len(stat); i++ {
		if cut[i] {
			continue
		}
		c := stat[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String(), keys, values
}

// envoyCollector is an unchecked collector (its series are not known in
// advance).
type envoyCollector struct{ c EnvoyCounters }

func (envoyCollector) Describe(chan<- *prometheus.Desc) {}

func (e envoyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, stat := range e.c.Names() {
		name, keys, values := envoySeries(stat)
		desc := prometheus.NewDesc(name, "Envoy counters "+name+" (stat tags as labels).", keys, nil)
		m, err := prometheus.NewConstMetric(desc, prometheus.CounterValue, float64(e.c.Get(stat)), values...)
		if err != nil {
			continue
		}
		ch <- m
	}
}
