package http

import (
	"math/rand/v2"
	nethttp "net/http"
	"net/netip"
	"reflect"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

func TestSanitize(t *testing.T) {
	m := &Manager{cfg: settings{limits: limits{underscores: corev3.HttpProtocolOptions_DROP_HEADER}}}
	r := &nethttp.Request{ProtoMajor: 1, ProtoMinor: 1, Header: nethttp.Header{
		"Connection":         {"keep-alive, X-Hop, Upgrade, x-forwarded-for"},
		"Upgrade":            {"h2c, websocket"},
		"Http2-Settings":     {"AAA"},
		"Keep-Alive":         {"timeout=5"},
		"Proxy-Connection":   {"keep-alive"},
		"Te":                 {"trailers"},
		"X-Hop":              {"1"},
		"X-Forwarded-For":    {"192.0.2.1"},
		"X-Envoy-Retry-On":   {"5xx"},
		"X-Trellis-Identity": {"x"},
		"X_Underscore":       {"1"},
		"X-Kept":             {"1"},
	}}
	up := m.sanitize(r, false)
	if up != "websocket" {
		t.Errorf("upgrade %q, want websocket (h2c dropped)", up)
	}
	want := nethttp.Header{
		"Upgrade":         {"websocket"},
		"Te":              {"trailers"},
		"X-Forwarded-For": {"192.0.2.1"},
		"X-Kept":          {"1"},
	}
	if !reflect.DeepEqual(r.Header, want) {
		t.Errorf("headers %v, want %v", r.Header, want)
	}

	r = &nethttp.Request{ProtoMajor: 2, Header: nethttp.Header{"Te": {"gzip"}, "X-Envoy-Peer-Metadata": {"m"}, "X-Forwarded-Client-Cert": {"c"}}}
	m.cfg.fwd.clientCert = hcmv3.HttpConnectionManager_APPEND_FORWARD
	if up := m.sanitize(r, true); up != "" || len(r.Header["Te"]) != 0 || r.Header.Get("X-Envoy-Peer-Metadata") != "m" || r.Header.Get("X-Forwarded-Client-Cert") != "c" {
		t.Errorf("trusted peer: upgrade %q headers %v", up, r.Header)
	}
}

func TestProxyHeaders(t *testing.T) {
	src := netip.MustParseAddrPort("10.1.1.1:5000")
	cases := []struct {
		name       string
		fwd        forwarding
		xff, xfp   string
		wantXFF    string
		wantClient string
		wantXFP    string
	}{
		{"edge appends", forwarding{useRemoteAddress: true}, "192.0.2.1", "https", "192.0.2.1,10.1.1.1", "10.1.1.1", "http"},
		{"edge, one trusted hop", forwarding{useRemoteAddress: true, xffTrustedHops: 1}, "192.0.2.1, 198.51.100.2", "", "192.0.2.1, 198.51.100.2,10.1.1.1", "198.51.100.2", "http"},
		{"edge, skip append", forwarding{useRemoteAddress: true, skipXFFAppend: true}, "", "", "", "10.1.1.1", "http"},
		{"internal trusts xfp", forwarding{}, "192.0.2.1", "https", "192.0.2.1", "192.0.2.1", "https"},
		{"internal, one trusted hop", forwarding{xffTrustedHops: 1}, "192.0.2.1,198.51.100.2", "", "192.0.2.1,198.51.100.2", "192.0.2.1", "http"},
		{"internal, no xff", forwarding{}, "", "", "", "10.1.1.1", "http"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.fwd.generateRequestID = true
			m := &Manager{cfg: settings{fwd: tc.fwd}, random: func() uint64 { return 42 }}
			r := &nethttp.Request{Header: nethttp.Header{}}
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", tc.xfp)
			}
			client, id := m.proxyHeaders(&exchange{}, r, src, "http")
			if got := r.Header.Get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("x-forwarded-for %q, want %q", got, tc.wantXFF)
			}
			if client != tc.wantClient {
				t.Errorf("client %q, want %q", client, tc.wantClient)
			}
			if got := r.Header.Get("X-Forwarded-Proto"); got != tc.wantXFP {
				t.Errorf("x-forwarded-proto %q, want %q", got, tc.wantXFP)
			}
			if id == "" || r.Header.Get("X-Request-Id") != id {
				t.Errorf("request id %q", id)
			}
		})
	}
}

func TestAuthorityAndServerHeader(t *testing.T) {
	local := netip.MustParseAddrPort("127.0.0.1:8080")
	m := &Manager{cfg: settings{hosts: hostRules{stripTrailingDot: true, stripMatchingPort: true}}}
	for in, want := range map[string]string{"a.com.": "a.com", "a.com.:8080": "a.com", "a.com:9090": "a.com:9090", "[::1]:8080": "[::1]"} {
		if got := m.authority(in, local); got != want {
			t.Errorf("authority(%q) = %q, want %q", in, got, want)
		}
	}
	m.cfg.hosts = hostRules{stripAnyPort: true}
	if got := m.authority("a.com:9090", local); got != "a.com" {
		t.Errorf("strip_any_host_port: %q", got)
	}
	for tr, want := range map[hcmv3.HttpConnectionManager_ServerHeaderTransformation][2]string{
		hcmv3.HttpConnectionManager_OVERWRITE:        {"trellis", "trellis"},
		hcmv3.HttpConnectionManager_APPEND_IF_ABSENT: {"backend", "trellis"},
		hcmv3.HttpConnectionManager_PASS_THROUGH:     {"backend", ""},
	} {
		m.cfg.server = newServerHeader("trellis", tr)
		h := nethttp.Header{"Server": {"backend"}}
		m.serverHeader(200, h)
		empty := nethttp.Header{}
		m.serverHeader(200, empty)
		if h.Get("Server") != want[0] || empty.Get("Server") != want[1] {
			t.Errorf("%v: %q / %q, want %q", tr, h.Get("Server"), empty.Get("Server"), want)
		}
	}
}

// TestUUID pins the request ID drawn from a random source: the first
// draw gives bytes 0–7 (least significant first), the second 8–15, with
// the version (4) and variant (10) bits set, as lower-case hex in the
// 8-4-4-4-12 form.
func TestUUID(t *testing.T) {
	draws := []uint64{0x0123456789abcdef, 0xfedcba9876543210, 0, 0, ^uint64(0), ^uint64(0)}
	m := &Manager{random: func() uint64 { v := draws[0]; draws = draws[1:]; return v }}
	for _, want := range []string{
		"efcdab89-6745-4301-9032-547698badcfe",
		"00000000-0000-4000-8000-000000000000",
		"ffffffff-ffff-4fff-bfff-ffffffffffff",
	} {
		if got := m.uuid(); got != want {
			t.Errorf("uuid() = %q, want %q", got, want)
		}
	}
}

func BenchmarkUUID(b *testing.B) {
	m := &Manager{random: rand.Uint64}
	for b.Loop() {
		_ = m.uuid()
	}
}
