package http_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// protocols are the downstream protocols every end-to-end test runs over.
var protocols = []struct {
	name string
	h2   bool
}{{"http1", false}, {"h2c", true}}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestMesh drives the generated 9080 configuration (Bookinfo plus
// testdata/mesh.yaml) end to end: real clients, the proxy on a loopback
// socket, real backends.
func TestMesh(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			ms := startMesh(t, nil)
			p, c := ms.proxy, client(t, proto.h2)
			wantProto := "HTTP/1.1"
			if proto.h2 {
				wantProto = "HTTP/2.0"
			}

			t.Run("weights and header ops", func(t *testing.T) {
				counts := map[string]int{}
				for range 1000 {
					resp := p.do(t, c, "GET", "reviews", "/reviews/1", http.Header{"X-Remove-Me": {"1"}}, nil)
					subset := resp.Header.Get("X-Subset-Response")
					routeHdr := resp.Header.Get("X-Route-Response")
					s := decodeSeen(t, resp)
					counts[s.Backend]++
					h := http.Header(s.Header)
					if want := s.Backend[len("outbound|9080|"):][:2]; h.Get("X-Subset") != want || subset != want {
						t.Fatalf("%s: request x-subset %q, response x-subset-response %q (weighted cluster header ops)", s.Backend, h.Get("X-Subset"), subset)
					}
					if h.Get("X-Route") != "reviews" || h.Get("X-Remove-Me") != "" || routeHdr != "reviews" {
						t.Fatalf("route header ops: x-route %q x-remove-me %q x-route-response %q", h.Get("X-Route"), h.Get("X-Remove-Me"), routeHdr)
					}
				}
				if v1 := counts[reviewsV1]; v1 < 750 || v1 > 850 || counts[reviewsV1]+counts[reviewsV3] != 1000 {
					t.Errorf("80/20 over 1,000 requests: %v; want v1 800 ± 50, the rest v3", counts)
				}
			})

			t.Run("header match", func(t *testing.T) {
				for _, user := range []string{"jason", "Jason", ""} {
					h := http.Header{}
					if user != "" {
						h.Set("End-User", user)
					}
					s := decodeSeen(t, p.do(t, c, "GET", "reviews:9080", "/reviews/1", h, nil))
					if got, want := s.Backend == reviewsV2, user == "jason"; got != want {
						t.Errorf("end-user %q went to %s", user, s.Backend)
					}
				}
			})

			t.Run("proxy headers", func(t *testing.T) {
				resp := p.do(t, c, "GET", "details", "/details/1", nil, nil)
				if got := resp.Header.Get("Server"); got != "envoy" {
					t.Errorf("server header %q, want envoy (OVERWRITE)", got)
				}
				if resp.Header.Get("X-Envoy-Upstream-Service-Time") == "" {
					t.Error("no x-envoy-upstream-service-time")
				}
				s := decodeSeen(t, resp)
				hv := http.Header(s.Header)
				if got := hv.Get("X-Forwarded-Proto"); got != "http" {
					t.Errorf("x-forwarded-proto %q", got)
				}
				if got := hv.Get("X-Request-Id"); !uuidRE.MatchString(got) {
					t.Errorf("x-request-id %q is not a v4 UUID", got)
				}
				if got := hv.Get("X-Envoy-Attempt-Count"); got != "1" {
					t.Errorf("x-envoy-attempt-count %q, want 1 (include_request_attempt_count)", got)
				}
				rec := p.rec.wait(t, byPath("/details/1"))
				if rec.Cluster != detailsV1 || rec.ResponseCode != 200 || rec.Flags != 0 || rec.UpstreamHost != ms.backends[detailsV1].addr() ||
					rec.Protocol != wantProto || rec.Details != "via_upstream" || rec.BytesSent == 0 || rec.RequestID != hv.Get("X-Request-Id") {
					t.Errorf("record %+v", rec)
				}
			})

			t.Run("rewrite", func(t *testing.T) {
				s := decodeSeen(t, p.do(t, c, "GET", "details", "/api/v1/items?q=1", nil, nil))
				if s.Backend != detailsV1 || s.URI != "/v1api/items?q=1" {
					t.Errorf("backend %s saw %q, want /v1api/items?q=1", s.Backend, s.URI)
				}
				if got := http.Header(s.Header).Get("X-Envoy-Original-Path"); got != "/api/v1/items?q=1" {
					t.Errorf("x-envoy-original-path %q", got)
				}
			})

			t.Run("redirect", func(t *testing.T) {
				resp := p.do(t, c, "GET", "details", "/old/page?x=1", nil, nil)
				readAll(t, resp)
				if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://details/new?x=1" {
					t.Errorf("got %d Location %q, want 302 http://details/new?x=1", resp.StatusCode, resp.Header.Get("Location"))
				}
			})

			t.Run("direct response", func(t *testing.T) {
				resp := p.do(t, c, "GET", "details", "/teapot", nil, nil)
				if body := readAll(t, resp); resp.StatusCode != 418 || body != "short and stout" {
					t.Errorf("got %d %q", resp.StatusCode, body)
				}
			})

			t.Run("retries hide a flaky backend", func(t *testing.T) {
				for i := range 6 {
					resp := p.do(t, c, "GET", "ratings", "/flaky/"+string(rune('a'+i)), nil, nil)
					s := decodeSeen(t, resp)
					if resp.StatusCode != 200 {
						t.Fatalf("request %d: %d", i, resp.StatusCode)
					}
					if got := http.Header(s.Header).Get("X-Envoy-Attempt-Count"); got != "2" {
						t.Errorf("request %d reached the backend on attempt %q, want 2", i, got)
					}
					rec := p.rec.wait(t, byPath("/flaky/"+string(rune('a'+i))))
					if rec.Attempts != 2 || rec.ResponseCode != 200 {
						t.Errorf("record: attempts %d code %d", rec.Attempts, rec.ResponseCode)
					}
				}
			})

			t.Run("fault delay", func(t *testing.T) {
				start := time.Now()
				resp := p.do(t, c, "GET", "ratings", "/delay", nil, nil)
				readAll(t, resp)
				if d := time.Since(start); resp.StatusCode != 200 || d < 300*time.Millisecond {
					t.Errorf("got %d after %v, want 200 after ≥ 300ms", resp.StatusCode, d)
				}
				if rec := p.rec.wait(t, byPath("/delay")); !rec.Flags.Has(filter.DelayInjected) {
					t.Errorf("flags %v, want DI", rec.Flags)
				}
			})

			t.Run("fault abort", func(t *testing.T) {
				resp := p.do(t, c, "GET", "ratings", "/abort", nil, nil)
				if body := readAll(t, resp); resp.StatusCode != 503 || body != "fault filter abort" {
					t.Errorf("got %d %q", resp.StatusCode, body)
				}
				rec := p.rec.wait(t, byPath("/abort"))
				if rec.Flags.String() != "FI" || rec.ResponseCode != 503 || rec.Details != "fault_filter_abort" {
					t.Errorf("record flags %v code %d details %q", rec.Flags, rec.ResponseCode, rec.Details)
				}
				for _, s := range ms.backends[ratingsV1].requests() {
					if s.URI == "/abort" {
						t.Error("the aborted request reached the backend")
					}
				}
			})

			t.Run("mirror", func(t *testing.T) {
				s := decodeSeen(t, p.do(t, c, "GET", "details", "/mirror/1", nil, nil))
				if s.Backend != detailsV1 {
					t.Errorf("main request went to %s", s.Backend)
				}
				deadline := time.Now().Add(waitFor)
				for {
					var got *seen
					for _, r := range ms.backends[detailsV2].requests() {
						if r.URI == "/mirror/1" {
							got = &r
						}
					}
					if got != nil {
						if got.Host != "details-shadow" {
							t.Errorf("mirror host %q, want details-shadow", got.Host)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("the mirror backend never got the copy")
					}
					time.Sleep(5 * time.Millisecond)
				}
			})

			t.Run("timeout", func(t *testing.T) {
				start := time.Now()
				resp := p.do(t, c, "GET", "details", "/slow", nil, nil)
				body := readAll(t, resp)
				if d := time.Since(start); resp.StatusCode != 504 || body != "upstream request timeout" || d > 3*time.Second {
					t.Errorf("got %d %q after %v, want 504 after ~200ms", resp.StatusCode, body, d)
				}
				if rec := p.rec.wait(t, byPath("/slow")); rec.Flags.String() != "UT" {
					t.Errorf("flags %v, want UT", rec.Flags)
				}
			})

			t.Run("cors", func(t *testing.T) {
				h := http.Header{"Origin": {"https://example.com"}, "Access-Control-Request-Method": {"POST"}}
				resp := p.do(t, c, "OPTIONS", "details", "/cors", h, nil)
				readAll(t, resp)
				want := map[string]string{
					"Access-Control-Allow-Origin":  "https://example.com",
					"Access-Control-Allow-Methods": "GET,POST",
					"Access-Control-Allow-Headers": "x-custom",
					"Access-Control-Max-Age":       "86400",
				}
				if resp.StatusCode != 200 {
					t.Errorf("preflight: %d", resp.StatusCode)
				}
				for k, v := range want {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("preflight %s: %q, want %q", k, got, v)
					}
				}
				for _, s := range ms.backends[detailsV1].requests() {
					if s.Method == "OPTIONS" {
						t.Error("the preflight reached the backend")
					}
				}
				resp = p.do(t, c, "GET", "details", "/cors", http.Header{"Origin": {"https://example.com"}}, nil)
				readAll(t, resp)
				if resp.Header.Get("Access-Control-Allow-Origin") != "https://example.com" || resp.Header.Get("Access-Control-Expose-Headers") != "x-exposed" {
					t.Errorf("actual request: CORS headers %v", resp.Header)
				}
				resp = p.do(t, c, "GET", "details", "/cors", http.Header{"Origin": {"https://evil.example"}}, nil)
				readAll(t, resp)
				if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
					t.Errorf("disallowed origin got Access-Control-Allow-Origin %q", v)
				}
			})

			t.Run("hash policy", func(t *testing.T) {
				before := len(ms.up.picksOf(echoAll))
				for _, user := range []string{"alice", "bob", "alice", ""} {
					h := http.Header{}
					if user != "" {
						h.Set("X-User", user)
					}
					readAll(t, p.do(t, c, "GET", "echo", "/hash", h, nil))
				}
				picks := ms.up.picksOf(echoAll)[before:]
				if len(picks) != 4 {
					t.Fatalf("%d picks", len(picks))
				}
				if !picks[0].HasHash || !picks[1].HasHash || picks[0].Hash != picks[2].Hash || picks[0].Hash == picks[1].Hash {
					t.Errorf("hashes alice %v/%x, bob %v/%x, alice again %x", picks[0].HasHash, picks[0].Hash, picks[1].HasHash, picks[1].Hash, picks[2].Hash)
				}
				if picks[3].HasHash {
					t.Error("a request without the header has a hash")
				}
				if picks[0].Attempt != 0 || len(picks[0].Previous) != 0 {
					t.Errorf("first attempt %d", picks[0].Attempt)
				}
			})

			t.Run("request body", func(t *testing.T) {
				body := strings.Repeat("trellis ", 20000) // 160 KB: beyond the retry buffer
				s := decodeSeen(t, p.do(t, c, "POST", "details", "/upload", nil, strings.NewReader(body)))
				if s.Body != body {
					t.Errorf("backend got %d bytes, want %d", len(s.Body), len(body))
				}
				if rec := p.rec.wait(t, byPath("/upload")); rec.BytesReceived != int64(len(body)) {
					t.Errorf("bytes received %d, want %d", rec.BytesReceived, len(body))
				}
			})
		})
	}
}
