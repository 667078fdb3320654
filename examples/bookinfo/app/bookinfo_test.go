package app_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Istio's texts, written out here so that a change to the package's
// constants is caught.
const (
	detailsUnavailable = "Sorry, product details are currently unavailable for this book."
	reviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."
	ratingsUnavailable = "Ratings service is currently unavailable"
)

// tracingHeaders are the headers Istio's productpage and reviews
// propagate, plus b3 (single-header B3) and end-user.
var tracingHeaders = []string{
	"x-request-id", "x-ot-span-context",
	"x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority",
	"traceparent", "tracestate", "x-cloud-trace-context", "grpc-trace-bin",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",
	"sw8", "end-user", "user-agent", "cookie", "authorization", "jwt",
}

func mustContain(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q\n%s", w, body)
		}
	}
}

func mustNotContain(t *testing.T, body string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(body, w) {
			t.Errorf("page has %q\n%s", w, body)
		}
	}
}

func TestPageShowsDetailsAndEachReviewsVersion(t *testing.T) {
	cases := []struct {
		version      string
		color        string // "" for no stars
		ratingsCalls int
	}{
		{version: "v1", color: "", ratingsCalls: 0},
		{version: "v2", color: "black", ratingsCalls: 1},
		{version: "v3", color: "red", ratingsCalls: 1},
	}
	for _, tc := range cases {
		t.Run(tc.version, func(t *testing.T) {
			m := startMesh(t, meshOptions{reviewsVersion: tc.version})
			status, body := m.get(t, nil, "/productpage", nil)
			if status != http.StatusOK {
				t.Fatalf("status %d, want 200", status)
			}
			mustContain(t, body,
				"The Comedy of Errors",
				"<dt>Author:</dt><dd>William Shakespeare</dd>",
				"<dt>Pages:</dt><dd>200</dd>",
				"<dt>ISBN-13:</dt><dd>123-1234567890</dd>",
				"<small>Reviewer1</small>", "<small>Reviewer2</small>",
				`data-reviews-version="reviews-`+tc.version+`">reviews-`+tc.version+`</dd>`,
			)
			mustNotContain(t, body, detailsUnavailable, reviewsUnavailable, ratingsUnavailable)
			if tc.color == "" {
				mustNotContain(t, body, `class="stars"`, "★")
			} else {
				// Reviewer1 has 5 stars, Reviewer2 4 (ratings' data).
				mustContain(t, body,
					`data-star-color="`+tc.color+`" data-stars="5"`,
					`data-star-color="`+tc.color+`" data-stars="4"`,
					">★★★★★</div>", ">★★★★☆</div>")
				if n := strings.Count(body, `data-star-color="`+tc.color+`"`); n != 2 {
					t.Errorf("%d reviews with %s stars, want 2", n, tc.color)
				}
			}
			if got := m.ratings.count(); got != tc.ratingsCalls {
				t.Errorf("ratings saw %d calls, want %d", got, tc.ratingsCalls)
			}
		})
	}
}

func TestSignedInUserIsEndUserDownToRatings(t *testing.T) {
	m := startMesh(t, meshOptions{reviewsVersion: "v2"})
	b := m.browser(t)

	_, body := m.get(t, b, "/productpage", nil)
	mustContain(t, body, `name="login_form"`)
	if got := m.reviews.last(t).Get("end-user"); got != "" {
		t.Fatalf("anonymous request reached reviews as end-user %q", got)
	}

	body = m.postForm(t, b, "/login", url.Values{"username": {"jason"}, "passwd": {"x"}}, m.page.URL+"/productpage")
	mustContain(t, body, "signed in as <b>jason</b>", "reviews-v2")
	for name, rec := range map[string]*recorder{"reviews": &m.reviews, "ratings": &m.ratings} {
		if got := rec.last(t).Get("end-user"); got != "jason" {
			t.Errorf("%s saw end-user %q after login, want jason", name, got)
		}
	}

	// Logging out clears the identity.
	m.reviews.reset()
	m.ratings.reset()
	req, err := http.NewRequest(http.MethodGet, m.page.URL+"/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Referer", m.page.URL+"/productpage")
	res, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.Path != "/productpage" {
		t.Errorf("logout returned to %s, want /productpage", res.Request.URL)
	}
	for name, rec := range map[string]*recorder{"reviews": &m.reviews, "ratings": &m.ratings} {
		if got := rec.last(t).Get("end-user"); got != "" {
			t.Errorf("%s saw end-user %q after logout, want none", name, got)
		}
	}
}

func TestLoginRejectsNamesThatCannotBeHeaders(t *testing.T) {
	m := startMesh(t, meshOptions{})
	for _, name := range []string{"jason\r\nx-evil: 1", strings.Repeat("a", 300)} {
		res, err := m.page.Client().PostForm(m.page.URL+"/login", url.Values{"username": {name}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("login as %q: status %d, want 400", name, res.StatusCode)
		}
	}
	// A forged cookie with a newline is ignored, not forwarded.
	status, body := m.get(t, nil, "/productpage", map[string]string{"Cookie": "user=jason%0Ax-evil%3A1"})
	if status != http.StatusOK || strings.Contains(body, "signed in") {
		t.Errorf("forged cookie: status %d, signed in: %v", status, strings.Contains(body, "signed in"))
	}
	if got := m.reviews.last(t).Get("end-user"); got != "" {
		t.Errorf("reviews saw end-user %q from a forged cookie", got)
	}
}

func TestEndUserHeaderWithoutLoginIsForwarded(t *testing.T) {
	m := startMesh(t, meshOptions{reviewsVersion: "v3"})
	_, body := m.get(t, nil, "/productpage", map[string]string{"end-user": "jason"})
	mustContain(t, body, "signed in as <b>jason</b>")
	if got := m.ratings.last(t).Get("end-user"); got != "jason" {
		t.Errorf("ratings saw end-user %q, want jason", got)
	}
}

func TestLoginRedirectStaysOnThisServer(t *testing.T) {
	m := startMesh(t, meshOptions{})
	c := *m.page.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for referer, want := range map[string]string{
		"":                                 "/productpage",
		"http://evil.example/steal?x=1":    "/steal?x=1",
		"//evil.example/x":                 "/x",
		"http://a//evil.example/x":         "/productpage", // would be protocol-relative
		m.page.URL + "/productpage?u=test": "/productpage?u=test",
	} {
		req, err := http.NewRequest(http.MethodPost, m.page.URL+"/login", strings.NewReader("username=tester"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Referer", referer)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Location"); res.StatusCode != http.StatusFound || got != want {
			t.Errorf("referer %q: %d to %q, want 302 to %q", referer, res.StatusCode, got, want)
		}
	}
}

func TestTracingHeadersReachRatingsUnchanged(t *testing.T) {
	m := startMesh(t, meshOptions{reviewsVersion: "v2"})
	sent := map[string]string{}
	for i, name := range tracingHeaders {
		sent[name] = "value-" + name + "-" + string(rune('a'+i))
	}
	sent["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	sent["b3"] = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"
	sent["x-b3-sampled"] = "1"
	sent["user-agent"] = "bookinfo-test/1.0"
	sent["cookie"] = "theme=dark"
	sent["end-user"] = "tracer"
	sent["x-not-forwarded"] = "secret"

	status, _ := m.get(t, nil, "/productpage", sent)
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	for svc, rec := range map[string]*recorder{"details": &m.details, "reviews": &m.reviews, "ratings": &m.ratings} {
		got := rec.last(t)
		for _, name := range tracingHeaders {
			if g := got.Get(name); g != sent[name] {
				t.Errorf("%s got %s %q, want %q", svc, name, g, sent[name])
			}
		}
		if g := got.Get("x-not-forwarded"); g != "" {
			t.Errorf("%s got x-not-forwarded %q: only the tracing and identity headers are forwarded", svc, g)
		}
	}

	// No user-agent in, none invented on the way (Go would add its own).
	m.ratings.reset()
	req, err := http.NewRequest(http.MethodGet, m.page.URL+"/productpage", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header["User-Agent"] = []string{""}
	res, err := m.page.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if ua := m.ratings.last(t).Values("User-Agent"); len(ua) != 0 {
		t.Errorf("ratings got user-agent %q for a request without one", ua)
	}
}

// respond answers every non-health request with status, without calling
// the real handler.
func respond(status int) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				h.ServeHTTP(w, r)
				return
			}
			http.Error(w, `{"error":"injected"}`, status)
		})
	}
}

// stall holds every request until the caller gives up.
func stall(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
			h.ServeHTTP(w, r)
		}
	})
}

func TestRatingsFailureStillRendersPage(t *testing.T) {
	cases := []struct {
		name string
		opts meshOptions
	}{
		{"refused", meshOptions{reviewsVersion: "v2", ratingsDown: true}},
		{"abort 500", meshOptions{reviewsVersion: "v2", ratingsFault: respond(http.StatusInternalServerError)}},
		{"timeout v3", meshOptions{reviewsVersion: "v3", ratingsFault: stall, reviewsArgs: []string{"--ratings-timeout", "200ms"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := startMesh(t, tc.opts)
			status, body := m.get(t, nil, "/productpage", nil)
			if status != http.StatusOK {
				t.Fatalf("status %d, want 200", status)
			}
			if n := strings.Count(body, ratingsUnavailable); n != 2 {
				t.Errorf("%q appears %d times, want once per review\n%s", ratingsUnavailable, n, body)
			}
			mustContain(t, body, "<small>Reviewer1</small>", "reviews-"+tc.opts.reviewsVersion, "William Shakespeare")
			mustNotContain(t, body, `class="stars"`, reviewsUnavailable)
		})
	}
}

func TestReviewsFailure(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		m := startMesh(t, meshOptions{reviewsDown: true})
		status, body := m.get(t, nil, "/productpage", nil)
		if status != http.StatusOK {
			t.Fatalf("status %d, want 200", status)
		}
		mustContain(t, body, reviewsUnavailable, "Error fetching product reviews!", "William Shakespeare")
		mustNotContain(t, body, "reviews-served-by")
	})
	t.Run("503 twice", func(t *testing.T) {
		m := startMesh(t, meshOptions{reviewsFault: respond(http.StatusServiceUnavailable)})
		_, body := m.get(t, nil, "/productpage", nil)
		mustContain(t, body, reviewsUnavailable)
		if n := m.reviews.count(); n != 2 {
			t.Errorf("reviews saw %d attempts, want 2 (Istio's productpage retries once)", n)
		}
		status, api := m.get(t, nil, "/api/v1/products/0/reviews", nil)
		if status != http.StatusServiceUnavailable || !strings.Contains(api, reviewsUnavailable) {
			t.Errorf("API: %d %s, want 503 with the unavailable text", status, api)
		}
	})
	t.Run("timeout then answer", func(t *testing.T) {
		var stalled atomic.Bool
		once := func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if stalled.CompareAndSwap(false, true) {
					stall(h).ServeHTTP(w, r)
					return
				}
				h.ServeHTTP(w, r)
			})
		}
		m := startMesh(t, meshOptions{reviewsVersion: "v2", reviewsFault: once, pageArgs: []string{"--reviews-timeout", "200ms"}})
		_, body := m.get(t, nil, "/productpage", nil)
		mustContain(t, body, "reviews-v2", `data-star-color="black"`)
		mustNotContain(t, body, reviewsUnavailable)
	})
}

func TestDetailsFailure(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		m := startMesh(t, meshOptions{detailsDown: true, reviewsVersion: "v3"})
		status, body := m.get(t, nil, "/productpage", nil)
		if status != http.StatusOK {
			t.Fatalf("status %d, want 200", status)
		}
		mustContain(t, body, detailsUnavailable, "Error fetching product details!", "reviews-v3", `data-star-color="red"`)
		mustNotContain(t, body, "<dt>Author:</dt>")
	})
	t.Run("abort 555", func(t *testing.T) {
		// fault-injection-details-v1.yaml aborts details with 555.
		m := startMesh(t, meshOptions{detailsFault: respond(555)})
		_, body := m.get(t, nil, "/productpage", nil)
		mustContain(t, body, detailsUnavailable)
		status, api := m.get(t, nil, "/api/v1/products/0", nil)
		var e map[string]string
		if err := json.Unmarshal([]byte(api), &e); err != nil || status != 555 || e["error"] != detailsUnavailable {
			t.Errorf("API: %d %s, want 555 {\"error\": %q}", status, api, detailsUnavailable)
		}
	})
}
