package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxAppMetricsBytes bounds what one scrape of the application may return.
const maxAppMetricsBytes = 32 << 20

// appMetrics is Istio's Prometheus merge (pilot-agent's /stats/prometheus
// on 15020): every scrape returns the proxy's metrics followed by the
// application's, fetched then, within a timeout. An application that
// fails (refused, timeout, non-200, unparsable) costs only its own part:
// the proxy's metrics are served and istio_agent_scrape_failures_total
// {type="application"} counts it. The output is one valid text exposition:
// each family once, with one # TYPE line; an application family with the
// name of one of the proxy's is dropped (the proxy's wins).
type appMetrics struct {
	url      string
	client   *http.Client
	log      *slog.Logger
	scrapes  prometheus.Counter
	failures prometheus.Counter
}

// newAppMetrics checks rawURL (http, with a host) and registers the scrape
// counters on reg, with pilot-agent's names.
func newAppMetrics(rawURL string, timeout time.Duration, reg prometheus.Registerer, log *slog.Logger) (*appMetrics, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("application metrics URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("application metrics URL %q: want http://host:port/path", rawURL)
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	a := &appMetrics{
		url: u.String(),
		// Its own transport: the application is local, the scrape is
		// periodic, and the proxy's upstream settings must not apply.
		client: &http.Client{Timeout: timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConns: 1, IdleConnTimeout: time.Minute}},
		log:    log,
		scrapes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "istio_agent_scrapes_total", Help: "The total number of scrapes.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "istio_agent_scrape_failures_total", Help: "The total number of failed scrapes.",
			ConstLabels: prometheus.Labels{"type": "application"},
		}),
	}
	for _, c := range []prometheus.Collector{a.scrapes, a.failures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("application metrics: registering the scrape counters: %w", err)
		}
	}
	return a, nil
}

// merged serves the proxy's families (from proxy) then the application's.
func (a *appMetrics) merged(proxy prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.scrapes.Inc()
		app, err := a.fetch(r.Context())
		if err != nil {
			a.failures.Inc()
			a.log.Debug("scraping the application's metrics failed", "url", a.url, "error", err)
		}
		fams, err := proxy.Gather()
		if err != nil { // partial: serve what was gathered, as promhttp would not
			a.log.Warn("gathering the proxy's metrics", "error", err)
		}
		format := expfmt.NewFormat(expfmt.TypeTextPlain)
		w.Header().Set("Content-Type", string(format))
		enc := expfmt.NewEncoder(w, format)
		seen := make(map[string]bool, len(fams))
		for _, f := range fams {
			seen[f.GetName()] = true
			if err := enc.Encode(f); err != nil {
				return // the scraper went away
			}
		}
		names := make([]string, 0, len(app))
		for n := range app {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if seen[n] {
				a.log.Debug("application metric family has a proxy metric's name: dropped", "family", n)
				continue
			}
			if err := enc.Encode(app[n]); err != nil {
				return
			}
		}
	})
}

// fetch scrapes the application once, asking for the text format.
func (a *appMetrics) fetch(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: %s", a.url, resp.Status)
	}
	if ft := expfmt.ResponseFormat(resp.Header).FormatType(); ft != expfmt.TypeTextPlain && ft != expfmt.TypeUnknown {
		return nil, fmt.Errorf("GET %s: unsupported format %q (want the Prometheus text format)", a.url, resp.Header.Get("Content-Type"))
	}
	body := io.LimitReader(resp.Body, maxAppMetricsBytes+1)
	lr := &countingReader{r: body}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(lr)
	if lr.n > maxAppMetricsBytes {
		return nil, fmt.Errorf("GET %s: more than %d bytes", a.url, maxAppMetricsBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("GET %s: parsing: %w", a.url, err)
	}
	return fams, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// AppMetricsURL builds the application's metrics URL from Istio's
// ISTIO_PROMETHEUS_ANNOTATIONS value, the JSON object the injector writes
// from the pod's prometheus.io annotations:
// {"scrape":"true","path":"/metrics","port":"8080"}. host is where the
// application listens (localhost in a pod; the workload's loopback
// address in local mode). It returns "" when scrape is not "true".
func AppMetricsURL(annotations map[string]string, host string) (string, error) {
	if annotations["scrape"] != "true" {
		return "", nil
	}
	port := annotations["port"]
	if port == "" {
		return "", errors.New(`"port" is required when "scrape" is "true"`)
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("port %q: not a number", port)
		}
	}
	if scheme := annotations["scheme"]; scheme != "" && scheme != "http" {
		return "", fmt.Errorf("scheme %q: only http is supported", scheme)
	}
	path := annotations["path"]
	if path == "" {
		path = "/metrics"
	}
	if path[0] != '/' {
		path = "/" + path
	}
	path, query, _ := strings.Cut(path, "?")
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(host, port), Path: path, RawQuery: query}
	return u.String(), nil
}
