package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/examples/bookinfo/app"
)

func TestProductPageAPI(t *testing.T) {
	m := startMesh(t, meshOptions{reviewsVersion: "v2"})
	decode := func(t *testing.T, path string, wantStatus int, v any) {
		t.Helper()
		status, body := m.get(t, nil, path, nil)
		if status != wantStatus {
			t.Fatalf("GET %s: status %d, want %d: %s", path, status, wantStatus, body)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	t.Run("products", func(t *testing.T) {
		var ps []app.Product
		decode(t, "/api/v1/products", 200, &ps)
		if len(ps) != 1 || ps[0].ID != 0 || ps[0].Title != "The Comedy of Errors" || ps[0].DescriptionHTML == "" {
			t.Errorf("products = %+v", ps)
		}
	})
	t.Run("details", func(t *testing.T) {
		var d app.BookDetails
		decode(t, "/api/v1/products/7", 200, &d)
		want := app.BookDetails{ID: 7, Author: "William Shakespeare", Year: 1595, Type: "paperback", Pages: 200,
			Publisher: "PublisherA", Language: "English", ISBN10: "1234567890", ISBN13: "123-1234567890"}
		if d != want {
			t.Errorf("details = %+v, want %+v", d, want)
		}
	})
	t.Run("reviews", func(t *testing.T) {
		var r app.ProductReviews
		decode(t, "/api/v1/products/0/reviews", 200, &r)
		if r.ID != "0" || r.Version != "v2" || r.PodName != "reviews-v2" || len(r.Reviews) != 2 {
			t.Fatalf("reviews = %+v", r)
		}
		for _, rv := range r.Reviews {
			if rv.Rating == nil || rv.Rating.Stars == nil || rv.Rating.Color != "black" {
				t.Errorf("review %+v: want black stars", rv)
			}
		}
	})
	t.Run("ratings", func(t *testing.T) {
		var r app.ProductRatings
		decode(t, "/api/v1/products/0/ratings", 200, &r)
		if !reflect.DeepEqual(r, app.ProductRatings{ID: 0, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}}) {
			t.Errorf("ratings = %+v", r)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		for _, p := range []string{"/api/v1/products/x", "/api/v1/products/-1/reviews", "/api/v1/products/1e3/ratings"} {
			var e map[string]string
			decode(t, p, 400, &e)
			if !strings.Contains(e["error"], "numeric product id") {
				t.Errorf("GET %s: error %q", p, e["error"])
			}
		}
	})
	t.Run("health and index", func(t *testing.T) {
		status, body := m.get(t, nil, "/health", nil)
		if status != 200 || body != "Product page is healthy" {
			t.Errorf("health: %d %q", status, body)
		}
		status, body = m.get(t, nil, "/", nil)
		if status != 200 || !strings.Contains(body, `href="productpage"`) {
			t.Errorf("index: %d %q", status, body)
		}
		if status, _ := m.get(t, nil, "/nope", nil); status != http.StatusNotFound {
			t.Errorf("unknown path: %d, want 404", status)
		}
	})
}

func TestBackendsDirectly(t *testing.T) {
	m := startMesh(t, meshOptions{reviewsVersion: "v1"})
	c := m.page.Client()
	do := func(t *testing.T, method, u, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: content type %q", method, u, ct)
		}
		return res.StatusCode, strings.TrimSpace(string(b))
	}
	cases := []struct {
		name, method, url, body string
		status                  int
		want                    string
	}{
		{"details health", "GET", m.detailsURL + "/health", "", 200, `{"status":"Details is healthy"}`},
		{"reviews health", "GET", m.reviewsURL + "/health", "", 200, `{"status":"Reviews is healthy"}`},
		{"ratings health", "GET", m.ratingsURL + "/health", "", 200, `{"status":"Ratings is healthy"}`},
		{"ratings", "GET", m.ratingsURL + "/ratings/3", "", 200, `{"id":3,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"ratings post", "POST", m.ratingsURL + "/ratings/3", `{"Reviewer1":2,"Reviewer2":3}`, 200, `{"id":3,"ratings":{"Reviewer1":2,"Reviewer2":3}}`},
		{"ratings after post", "GET", m.ratingsURL + "/ratings/3", "", 200, `{"id":3,"ratings":{"Reviewer1":2,"Reviewer2":3}}`},
		{"other product unchanged", "GET", m.ratingsURL + "/ratings/4", "", 200, `{"id":4,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{"ratings post out of range", "POST", m.ratingsURL + "/ratings/3", `{"Reviewer1":9}`, 400, `{"error":"ratings body: \"Reviewer1\": stars 9: must be 1 to 5"}`},
		{"ratings post not json", "POST", m.ratingsURL + "/ratings/3", `stars`, 400, ``},
		{"reviews v1", "GET", m.reviewsURL + "/reviews/0", "", 200, ``},
		{"details bad id", "GET", m.detailsURL + "/details/abc", "", 400, `{"error":"product id \"abc\": please provide a numeric product id"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := do(t, tc.method, tc.url, tc.body)
			if status != tc.status || (tc.want != "" && body != tc.want) {
				t.Errorf("%s %s: %d %s, want %d %s", tc.method, tc.url, status, body, tc.status, tc.want)
			}
		})
	}
	// v1 sends no rating at all.
	_, body := do(t, "GET", m.reviewsURL+"/reviews/0", "")
	if strings.Contains(body, "rating") {
		t.Errorf("reviews v1 answered with ratings: %s", body)
	}
}

// TestOutboundThroughSidecar runs productpage and reviews as local mode
// does: their service URLs are the Kubernetes defaults, every connection
// goes to one "sidecar" address, and the sidecar routes on Host.
func TestOutboundThroughSidecar(t *testing.T) {
	backends := map[string]string{} // Host -> backend URL
	var mu sync.Mutex
	var hosts []string
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	sidecar := httptest.NewServer(&httputil.ReverseProxy{
		Transport: tr,
		Rewrite: func(pr *httputil.ProxyRequest) {
			mu.Lock()
			hosts = append(hosts, pr.In.Host)
			target := backends[pr.In.Host]
			mu.Unlock()
			u, _ := url.Parse(target)
			pr.SetURL(u)
		},
	})
	defer sidecar.Close()
	outbound := strings.TrimPrefix(sidecar.URL, "http://")

	ratingsURL := startService(t, []string{"ratings"}, nil)
	detailsURL := startService(t, []string{"details"}, nil)
	reviewsURL := startService(t, []string{"reviews", "--version", "v2", "--outbound", outbound}, nil)
	mu.Lock()
	backends["ratings:9080"], backends["details:9080"], backends["reviews:9080"] = ratingsURL, detailsURL, reviewsURL
	mu.Unlock()
	pageURL := startService(t, []string{"productpage", "--outbound", outbound}, nil)

	res, err := http.Get(pageURL + "/productpage")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	mustContain(t, string(b), "reviews-v2", `data-star-color="black"`, "William Shakespeare")
	mu.Lock()
	defer mu.Unlock()
	seen := strings.Join(hosts, ",")
	for _, h := range []string{"details:9080", "reviews:9080", "ratings:9080"} {
		if !strings.Contains(seen, h) {
			t.Errorf("sidecar saw hosts %s, want %s among them", seen, h)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestServeStopsOnCancel(t *testing.T) {
	cfg, err := app.ParseArgs([]string{"details", "--listen", "127.0.0.1:0"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Serve(ctx, ln) }()
	c := &http.Client{Transport: &http.Transport{}}
	res, err := c.Get("http://" + ln.Addr().String() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	c.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after Serve returned")
	}

	// Run reports a port in use with the address.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg.Listen = busy.Addr().String()
	svc2, err := app.New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	err = svc2.Run(context.Background())
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.Contains(err.Error(), cfg.Listen) {
		t.Errorf("Run on a busy port: %v, want a listen error naming %s", err, cfg.Listen)
	}
}
