package dashboard

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/server"
)

// metricsPath is where proxies serve Istio's metrics (Envoy's and the
// Trellis sidecar's merged port).
const metricsPath = "/stats/prometheus"

// scraper fetches the connected proxies' metrics in rounds, on demand:
// the graph endpoint starts a round when the last one is older than the
// interval, so proxies are scraped only while someone watches. It keeps
// the last two rounds, whose difference gives the rates.
type scraper struct {
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	interval time.Duration
	// warmup is how soon after a first round the second one may run, so
	// that a new viewer sees rates quickly.
	warmup   time.Duration
	parallel int
	now      func() time.Time

	// mu is held for a whole round, so rounds never overlap; it guards
	// prev and cur.
	mu        sync.Mutex
	prev, cur *Round
}

// target is one proxy to scrape.
type target struct {
	proxy, name, url, err string
}

// targets lists one target per connected proxy (its newest stream).
func targets(clients []server.ClientStatus) []target {
	newest := map[string]server.ClientStatus{}
	var order []string
	for _, c := range clients {
		old, ok := newest[c.ProxyID]
		if !ok {
			order = append(order, c.ProxyID)
		}
		if !ok || c.ConnectedAt.After(old.ConnectedAt) {
			newest[c.ProxyID] = c
		}
	}
	out := make([]target, 0, len(order))
	for _, id := range order {
		c := newest[id]
		t := target{proxy: id, name: c.Name}
		if c.MetricsAddress == "" {
			t.err = "the proxy did not send its metrics address (node metadata " + model.MetaMetricsAddress + ")"
		} else {
			t.url = "http://" + c.MetricsAddress + metricsPath
		}
		out = append(out, t)
	}
	return out
}

// graph returns the graph of the last two rounds, running a new round
// first when one is due. Scrapes are bounded by the scraper's timeout
// whatever ctx says, so a viewer going away does not spoil a round.
func (s *scraper) graph(ctx context.Context, clients func() []server.ClientStatus) Graph {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now := s.now(); s.due(now) {
		r := s.round(context.WithoutCancel(ctx), targets(clients()))
		if s.cur != nil && r.At.Sub(s.cur.At) <= 3*s.interval {
			s.prev = s.cur
		} else {
			// Too old to give a current rate: start over.
			s.prev = nil
		}
		s.cur = &r
	}
	g := Compute(s.prev, *s.cur)
	wait := s.interval
	if s.prev == nil {
		wait = s.warmup
	}
	g.NextPollMillis = max(200, (wait-s.now().Sub(s.cur.At)).Milliseconds()+50)
	return g
}

func (s *scraper) due(now time.Time) bool {
	if s.cur == nil {
		return true
	}
	age := now.Sub(s.cur.At)
	return age >= s.interval || (s.prev == nil && age >= s.warmup)
}

// latest returns the last scrape of each proxy without scraping.
func (s *scraper) latest() map[string]Scrape {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	return s.cur.Proxies
}

// round scrapes every target, at most parallel at a time.
func (s *scraper) round(ctx context.Context, ts []target) Round {
	r := Round{At: s.now(), Proxies: make(map[string]Scrape, len(ts))}
	results := make([]Scrape, len(ts))
	sem := make(chan struct{}, s.parallel)
	var wg sync.WaitGroup
	for i, t := range ts {
		results[i] = Scrape{Proxy: t.proxy, Name: t.name, URL: t.url, Error: t.err}
		if t.err != "" {
			results[i].At = r.At
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i].At = s.now()
			sample, err := s.fetch(ctx, t.url)
			if err != nil {
				results[i].Error = err.Error()
				return
			}
			results[i].Sample = sample
		})
	}
	wg.Wait()
	for _, sc := range results {
		r.Proxies[sc.Proxy] = sc
	}
	return r
}

// fetch scrapes one proxy.
func (s *scraper) fetch(ctx context.Context, url string) (Sample, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Sample{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	res, err := s.client.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("scraping %s: status %s", url, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, s.maxBytes+1))
	if err != nil {
		return Sample{}, fmt.Errorf("scraping %s: reading: %w", url, err)
	}
	if int64(len(body)) > s.maxBytes {
		return Sample{}, fmt.Errorf("scraping %s: more than %d bytes of metrics", url, s.maxBytes)
	}
	sample, err := ParseSample(bytes.NewReader(body))
	if err != nil {
		return Sample{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	return sample, nil
}
