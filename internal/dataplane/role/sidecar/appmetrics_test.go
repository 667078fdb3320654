package sidecar

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// appServer serves an application's metrics with client_golang: a family
// of its own and one with the name of a proxy family.
func appServer(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	orders := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_orders_total", Help: "Orders."})
	orders.Add(3)
	clash := prometheus.NewGauge(prometheus.GaugeOpts{Name: "istio_requests_total", Help: "An app metric with a proxy metric's name."})
	clash.Set(42)
	reg.MustRegister(orders, clash)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv
}

func scrapeMerged(t *testing.T, s *Sidecar) (string, map[string]float64) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.metricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	// A valid exposition: the parser rejects a family seen twice.
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("merged output is not valid text format: %v\n%s", err, body)
	}
	vals := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				vals[name] += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				vals[name] += m.GetGauge().GetValue()
			}
		}
	}
	if n := strings.Count(body, "# TYPE istio_requests_total "); n != 1 {
		t.Errorf("%d TYPE lines for istio_requests_total", n)
	}
	return body, vals
}

// TestMergedMetrics scrapes 15020's handler with a real application
// metrics server: proxy metrics then the application's, the clashing
// family kept once (the proxy's); with the application down or too slow,
// the proxy's metrics are still served and the failure counted.
func TestMergedMetrics(t *testing.T) {
	app := appServer(t)
	node, err := NodeConfig{IP: "10.0.0.7", PodName: "web-1", Namespace: "shop"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{XDSAddress: "127.0.0.1:1", Node: node, AppMetricsURL: app.URL + "/metrics", AppMetricsTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.metrics.Observe(&filter.Record{Listener: "0.0.0.0_80", Cluster: "outbound|80||a", ResponseCode: 200, Duration: time.Millisecond})

	body, v := scrapeMerged(t, s)
	if v["app_orders_total"] != 3 {
		t.Errorf("app_orders_total = %v\n%s", v["app_orders_total"], body)
	}
	if v["istio_requests_total"] != 1 || strings.Contains(body, "istio_requests_total 42") {
		t.Errorf("istio_requests_total should be the proxy's counter (1), got %v\n%s", v["istio_requests_total"], body)
	}
	if strings.Index(body, "istio_requests_total") > strings.Index(body, "app_orders_total") {
		t.Error("the application's metrics come before the proxy's")
	}
	if v["istio_agent_scrapes_total"] != 1 || v["istio_agent_scrape_failures_total"] != 0 {
		t.Errorf("scrapes %v failures %v", v["istio_agent_scrapes_total"], v["istio_agent_scrape_failures_total"])
	}

	// The application is down.
	app.Close()
	body, v = scrapeMerged(t, s)
	if _, ok := v["app_orders_total"]; ok || v["istio_requests_total"] != 1 {
		t.Errorf("with the app down: %s", body)
	}
	if !strings.Contains(body, `istio_agent_scrape_failures_total{type="application"} 1`) {
		t.Errorf("failure not counted:\n%s", body)
	}

	// The application is too slow: the scrape gives up after the timeout.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	s.app.url = slow.URL
	start := time.Now()
	_, v = scrapeMerged(t, s)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("scrape took %v with a 300ms application timeout", el)
	}
	if v["istio_agent_scrape_failures_total"] != 2 || v["istio_requests_total"] != 1 {
		t.Errorf("slow app: failures %v, proxy requests %v", v["istio_agent_scrape_failures_total"], v["istio_requests_total"])
	}
}

func TestAppMetricsURL(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		host string
		want string
		err  string
	}{
		{"injector's value", map[string]string{"scrape": "true", "path": "/metrics", "port": "8080"}, "localhost", "http://localhost:8080/metrics", ""},
		{"loopback address, default path", map[string]string{"scrape": "true", "port": "9090"}, "127.0.0.5", "http://127.0.0.5:9090/metrics", ""},
		{"path with a query", map[string]string{"scrape": "true", "port": "1", "path": "stats?format=prom"}, "::1", "http://[::1]:1/stats?format=prom", ""},
		{"not scraped", map[string]string{"scrape": "false", "port": "8080"}, "localhost", "", ""},
		{"no port", map[string]string{"scrape": "true"}, "localhost", "", `"port" is required`},
		{"bad port", map[string]string{"scrape": "true", "port": "http"}, "localhost", "", `port "http": not a number`},
		{"https", map[string]string{"scrape": "true", "port": "1", "scheme": "https"}, "localhost", "", "only http"},
	} {
		got, err := AppMetricsURL(tc.ann, tc.host)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := newAppMetrics("ftp://x/metrics", 0, prometheus.NewRegistry(), nil); err == nil {
		t.Error("ftp URL accepted")
	}
}
