package filter

import (
	"net/http"
	"slices"
	"testing"
)

// Route matching looks headers up by the lower-case names of xDS; the
// canonical keys of an http.Header must be found for common and uncommon
// names alike, and the common ones without allocating.
func TestHeaderValuesByLowerCaseName(t *testing.T) {
	h := Header(http.Header{
		"X-Forwarded-Proto": {"https"},
		"X-Tenant-Shard":    {"eu-1", "eu-2"},
		"X-Envoy-Internal":  {"true"},
	})
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"x-forwarded-proto", []string{"https"}},
		{"X-Forwarded-Proto", []string{"https"}},
		{"x-tenant-shard", []string{"eu-1", "eu-2"}},
		{"X-TENANT-SHARD", []string{"eu-1", "eu-2"}},
		{"x-envoy-internal", []string{"true"}},
		{"x-absent", nil},
	} {
		if got := h.Values(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("Values(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = h.Values("x-forwarded-proto") }); n != 0 {
		t.Errorf("Values of a common lower-case name allocates %.0f times, want 0", n)
	}
}
