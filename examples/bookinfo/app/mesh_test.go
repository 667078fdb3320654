package app_test

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/trellismesh/trellis/examples/bookinfo/app"
)

// recorder wraps a real service handler and keeps the headers of every
// request it saw.
type recorder struct {
	mu   sync.Mutex
	seen []http.Header
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			rec.mu.Lock()
			rec.seen = append(rec.seen, r.Header.Clone())
			rec.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.seen)
}

// last is the headers of the latest request; it fails the test if there
// was none.
func (rec *recorder) last(t *testing.T) http.Header {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.seen) == 0 {
		t.Fatal("the service saw no request")
	}
	return rec.seen[len(rec.seen)-1]
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	rec.seen = nil
	rec.mu.Unlock()
}

// meshOptions shapes one in-process Bookinfo.
type meshOptions struct {
	reviewsVersion string
	// down makes a service unreachable (connection refused).
	detailsDown, reviewsDown, ratingsDown bool
	// fault wraps a service's real handler (inject errors or delays).
	detailsFault, reviewsFault, ratingsFault func(http.Handler) http.Handler
	reviewsArgs, pageArgs                    []string
}

// mesh is the four services on loopback, each a real Service behind an
// httptest server, wired by the same flags a user passes.
type mesh struct {
	page                      *httptest.Server
	details, reviews, ratings recorder
	detailsURL, reviewsURL    string
	ratingsURL                string
}

func noEnv(string) string { return "" }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startService parses args as the command does and serves the result.
func startService(t *testing.T, args []string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	cfg, err := app.ParseArgs(args, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	svc, err := app.New(cfg, quietLogger())
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Role, err)
	}
	var h http.Handler = svc
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		svc.Close()
	})
	return srv.URL
}

// refusedURL is the URL of a loopback port nothing listens on.
func refusedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

func chain(fault func(http.Handler) http.Handler, rec *recorder) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		if fault != nil {
			h = fault(h)
		}
		return rec.wrap(h)
	}
}

func startMesh(t *testing.T, o meshOptions) *mesh {
	t.Helper()
	if o.reviewsVersion == "" {
		o.reviewsVersion = "v1"
	}
	m := &mesh{}
	m.ratingsURL = refusedURL(t)
	if !o.ratingsDown {
		m.ratingsURL = startService(t, []string{"ratings", "--listen", "127.0.0.1:0"}, chain(o.ratingsFault, &m.ratings))
	}
	m.detailsURL = refusedURL(t)
	if !o.detailsDown {
		m.detailsURL = startService(t, []string{"details", "--listen", "127.0.0.1:0"}, chain(o.detailsFault, &m.details))
	}
	m.reviewsURL = refusedURL(t)
	if !o.reviewsDown {
		args := append([]string{"reviews", "--version", o.reviewsVersion, "--listen", "127.0.0.1:0",
			"--ratings-url", m.ratingsURL}, o.reviewsArgs...)
		m.reviewsURL = startService(t, args, chain(o.reviewsFault, &m.reviews))
	}
	args := append([]string{"productpage", "--listen", "127.0.0.1:0",
		"--details-url", m.detailsURL, "--reviews-url", m.reviewsURL, "--ratings-url", m.ratingsURL}, o.pageArgs...)
	cfg, err := app.ParseArgs(args, noEnv, io.Discard)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	svc, err := app.New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	m.page = httptest.NewServer(svc)
	t.Cleanup(func() {
		m.page.Close()
		svc.Close()
	})
	return m
}

// get fetches path from productpage with the given headers and returns
// the status and body.
func (m *mesh) get(t *testing.T, c *http.Client, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, m.page.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = m.page.Client()
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return res.StatusCode, string(b)
}

// browser is a client that keeps cookies, as a browser does.
func (m *mesh) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *m.page.Client()
	c.Jar = jar
	return &c
}

// postForm posts a form to productpage with a Referer, following the
// redirect, and returns the final body.
func (m *mesh) postForm(t *testing.T, c *http.Client, path string, form url.Values, referer string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, m.page.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Referer", referer)
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: ended at %s with status %d: %s", path, res.Request.URL, res.StatusCode, b)
	}
	return string(b)
}
