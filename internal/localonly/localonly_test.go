package localonly

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWrap(t *testing.T) {
	h := Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}), "test")
	for remote, want := range map[string]int{
		"127.0.0.1:1":          http.StatusOK,
		"127.9.9.9:1":          http.StatusOK,
		"[::1]:1":              http.StatusOK,
		"[::ffff:127.0.0.1]:1": http.StatusOK,
		"192.0.2.10:1":         http.StatusForbidden,
		"[2001:db8::1]:1":      http.StatusForbidden,
		"[::ffff:192.0.2.1]:1": http.StatusForbidden,
		"0.0.0.0:1":            http.StatusForbidden,
		"not-an-address":       http.StatusForbidden,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("%s: status %d, want %d", remote, rec.Code, want)
		}
	}
}
