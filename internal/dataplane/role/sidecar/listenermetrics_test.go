package sidecar

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestListenerMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newListenerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.TLSHandshakeFailed("virtualInbound", "unknown_ca")
	m.TLSHandshakeFailed("virtualInbound", "unknown_ca")
	m.TLSHandshakeFailed("virtualInbound", "certificate_expired")
	m.FilterClosed("virtualInbound", "timeout")
	m.Overflow("virtualOutbound")
	m.NoFilterChain("virtualOutbound")
	want := `
# HELP trellis_listener_tls_handshake_failures_total Downstream TLS handshakes that failed, by listener and reason.
# TYPE trellis_listener_tls_handshake_failures_total counter
trellis_listener_tls_handshake_failures_total{listener="virtualInbound",reason="certificate_expired"} 1
trellis_listener_tls_handshake_failures_total{listener="virtualInbound",reason="unknown_ca"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "trellis_listener_tls_handshake_failures_total"); err != nil {
		t.Error(err)
	}
	for name, want := range map[string]int{
		"trellis_listener_filter_closed_total": 1, "trellis_listener_overflow_total": 1, "trellis_listener_no_filter_chain_total": 1,
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series, %v", name, n, err)
		}
	}
	if _, err := newListenerMetrics(reg); err == nil {
		t.Error("registering twice: no error")
	}
}
