package telemetry

import (
	"io"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// counters is an EnvoyCounters of fixed values.
type counters map[string]uint64

func (c counters) Names() []string {
	var out []string
	for k := range c {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (c counters) Get(n string) uint64 { return c[n] }

func TestEnvoyCounters(t *testing.T) {
	m := New(Config{})
	c := counters{
		"tcp.rbac.allowed": 3,
		"tcp.rbac.denied":  2,
		"tcp.rbac.istio_dry_run_deny_.shadow_denied":   5,
		"tcp.rbac.istio_dry_run_allow_.shadow_allowed": 7,
		"http.rbac.denied":                             1,
		"tcp.rbac.istio_ext_authz_.shadow_denied":      4,
		"ext_authz.tcp.ok":                             6,
	}
	if err := m.RegisterEnvoyCounters(c); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`envoy_tcp_rbac{authz_enforce_result="allowed"} 3`,
		`envoy_tcp_rbac{authz_enforce_result="denied"} 2`,
		`envoy_tcp_rbac{authz_dry_run_action="deny",authz_dry_run_result="denied"} 5`,
		`envoy_tcp_rbac{authz_dry_run_action="allow",authz_dry_run_result="allowed"} 7`,
		`envoy_http_rbac{authz_enforce_result="denied"} 1`,
		`envoy_tcp_rbac_istio_ext_authz_{authz_dry_run_result="denied"} 4`,
		`envoy_ext_authz_tcp_ok 6`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("missing %s in:\n%s", want, body)
		}
	}
}
