package discovery

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
)

func TestReadyEndpointBeforeRun(t *testing.T) {
	s, err := New(testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.monitoringHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /ready before Run: %d %q, want 503", rec.Code, rec.Body.String())
	}
}

func TestMonitoringEndpoint(t *testing.T) {
	s, _ := start(t, map[string]string{"reviews.yaml": reviewsEntry(9080)})

	if code, body := get(t, s, "/ready"); code != http.StatusOK {
		t.Errorf("GET /ready: %d %q, want 200", code, body)
	}
	code, body := get(t, s, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, re := range []string{`(?m)^pilot_xds \d`, `(?m)^go_goroutines \d`} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
	// Over the network from 127.0.0.1.
	if code, _ := get(t, s, "/debug/pprof/"); code != http.StatusOK {
		t.Errorf("GET /debug/pprof/ from loopback: %d, want 200", code)
	}
}

func TestPprofLoopbackOnly(t *testing.T) {
	s, err := New(testConfig(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	h := s.monitoringHandler()
	tests := []struct {
		name, remote, path string
		want               int
	}{
		{"IPv4 loopback", "127.0.0.1:40000", "/debug/pprof/", http.StatusOK},
		{"other 127/8 address", "127.0.0.2:40000", "/debug/pprof/", http.StatusOK},
		{"IPv6 loopback", "[::1]:40000", "/debug/pprof/", http.StatusOK},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:40000", "/debug/pprof/", http.StatusOK},
		{"remote", "192.0.2.10:1234", "/debug/pprof/", http.StatusForbidden},
		{"remote, named profile", "192.0.2.10:1234", "/debug/pprof/heap", http.StatusForbidden},
		{"remote, goroutine dump", "192.0.2.10:1234", "/debug/pprof/goroutine?debug=2", http.StatusForbidden},
		{"remote, CPU profile", "192.0.2.10:1234", "/debug/pprof/profile?seconds=1", http.StatusForbidden},
		{"loopback, syncz", "127.0.0.1:40000", "/debug/syncz", http.StatusOK},
		{"remote, syncz", "192.0.2.10:1234", "/debug/syncz", http.StatusForbidden},
		{"remote, config dump", "192.0.2.10:1234", "/debug/config_dump?proxyID=a.b", http.StatusForbidden},
		{"remote IPv6", "[2001:db8::1]:1234", "/debug/pprof/", http.StatusForbidden},
		{"remote IPv4-mapped", "[::ffff:192.0.2.10]:1234", "/debug/pprof/", http.StatusForbidden},
		{"unspecified", "0.0.0.0:1234", "/debug/pprof/", http.StatusForbidden},
		{"no port", "127.0.0.1", "/debug/pprof/", http.StatusForbidden},
		{"garbage", "localhost:1234", "/debug/pprof/", http.StatusForbidden},
		{"empty", "", "/debug/pprof/", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.RemoteAddr = tt.remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("GET %s from %q: %d, want %d", tt.path, tt.remote, rec.Code, tt.want)
			}
		})
	}
}
