package sidecar

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	dphttp "github.com/trellismesh/trellis/internal/dataplane/http"
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
	m.FilterClosed("virtualInbound", "handshake_timeout")
	m.FilterClosed("virtualInbound", "remote_close")
	for name, want := range map[string]int{
		"trellis_listener_filter_closed_total": 3, "envoy_listener_downstream_cx_overflow": 1, "envoy_listener_no_filter_chain_match": 1,
		"envoy_listener_downstream_pre_cx_timeout": 1,
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != want {
			t.Errorf("%s: %d series, %v", name, n, err)
		}
	}
	if v := testutil.ToFloat64(m.preTimeout.WithLabelValues("virtualInbound")); v != 2 {
		t.Errorf("envoy_listener_downstream_pre_cx_timeout = %v, want 2 (a filter timeout and a handshake timeout)", v)
	}
	if _, err := newListenerMetrics(reg); err == nil {
		t.Error("registering twice: no error")
	}
}

func TestHTTPLimitMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newHTTPLimitMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Count("inbound_0.0.0.0_8080", dphttp.StatProtocolError)
	m.Count("inbound_0.0.0.0_8080", dphttp.StatProtocolError)
	m.Count("inbound_0.0.0.0_8080", dphttp.StatEmptyFramesFlood)
	m.Count("outbound_0.0.0.0_80", dphttp.StatHTTP1Underscores)
	want := `
# HELP envoy_http_downstream_cx_protocol_error Envoy's downstream_cx_protocol_error: requests refused or connections closed at this limit.
# TYPE envoy_http_downstream_cx_protocol_error counter
envoy_http_downstream_cx_protocol_error{envoy_http_conn_manager_prefix="inbound_0.0.0.0_8080"} 2
# HELP envoy_http2_inbound_empty_frames_flood Envoy's http2.inbound_empty_frames_flood: requests refused or connections closed at this limit.
# TYPE envoy_http2_inbound_empty_frames_flood counter
envoy_http2_inbound_empty_frames_flood{envoy_http_conn_manager_prefix="inbound_0.0.0.0_8080"} 1
# HELP envoy_http1_requests_rejected_with_underscores_in_headers Envoy's http1.requests_rejected_with_underscores_in_headers: requests refused or connections closed at this limit.
# TYPE envoy_http1_requests_rejected_with_underscores_in_headers counter
envoy_http1_requests_rejected_with_underscores_in_headers{envoy_http_conn_manager_prefix="outbound_0.0.0.0_80"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "envoy_http_downstream_cx_protocol_error",
		"envoy_http2_inbound_empty_frames_flood", "envoy_http1_requests_rejected_with_underscores_in_headers"); err != nil {
		t.Error(err)
	}
	if _, err := newHTTPLimitMetrics(reg); err == nil {
		t.Error("registering twice: no error")
	}
}
