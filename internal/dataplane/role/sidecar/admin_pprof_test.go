package sidecar

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminProfiles fetches profiles the way bench/proxybench and go tool
// pprof do, through the admin handler: loopback callers get them, remote
// ones a 403.
func TestAdminProfiles(t *testing.T) {
	h := testAdmin(t)
	gzipped := func(b []byte) bool { return bytes.HasPrefix(b, []byte{0x1f, 0x8b}) }
	for _, tc := range []struct {
		name, remote, path string
		want               int
		body               func([]byte) bool
	}{
		{"index", "127.0.0.1:4000", "/debug/pprof/", http.StatusOK, func(b []byte) bool { return strings.Contains(string(b), "allocs") }},
		{"heap", "127.0.0.1:4000", "/debug/pprof/heap", http.StatusOK, gzipped},
		{"allocs delta", "127.0.0.1:4000", "/debug/pprof/allocs?seconds=1", http.StatusOK, gzipped},
		{"goroutine text", "[::1]:4000", "/debug/pprof/goroutine?debug=1", http.StatusOK, func(b []byte) bool { return strings.HasPrefix(string(b), "goroutine profile:") }},
		{"remote heap", "192.0.2.10:4000", "/debug/pprof/heap", http.StatusForbidden, nil},
		{"remote CPU profile", "192.0.2.10:4000", "/debug/pprof/profile?seconds=1", http.StatusForbidden, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.RemoteAddr = tc.remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d: %.200s", rec.Code, tc.want, rec.Body.Bytes())
			}
			if tc.body != nil && !tc.body(rec.Body.Bytes()) {
				t.Errorf("unexpected body: %.200q", rec.Body.Bytes())
			}
		})
	}
}
