package rbac_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	rbacfilter "github.com/trellismesh/trellis/internal/dataplane/http/filter/rbac"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
)

// pathPolicy matches requests for path.
func pathPolicy(path string) map[string]*rbacconfigv3.Policy {
	return map[string]*rbacconfigv3.Policy{"ns[foo]-policy[p]-rule[0]": {
		Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: path}}}}}}},
		Principals: []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
	}}
}

// TestStats: the counters Envoy names move on allow, deny and dry run,
// and the dry-run result is in the stream's metadata.
func TestStats(t *testing.T) {
	stats := &rbac.Counters{}
	build := func(m *rbacv3.RBAC) filter.Filter {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		f, err := rbacfilter.Factory{Stats: stats}.Build("envoy.filters.http.rbac", a)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	// A DENY on /admin, then a dry-run ALLOW of /public only.
	deny := build(&rbacv3.RBAC{Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_DENY, Policies: pathPolicy("/admin")}})
	dryRun := build(&rbacv3.RBAC{ShadowRules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_ALLOW, Policies: pathPolicy("/public")},
		ShadowRulesStatPrefix: "istio_dry_run_allow_"})
	var md map[string]map[string]any
	h := deny.Wrap(dryRun.Wrap(filter.HandlerFunc(func(s *filter.Stream) {
		md = s.Metadata
		s.Writer().WriteHeader(http.StatusOK)
	})))
	for _, tc := range []struct {
		path   string
		status int
		shadow string
	}{
		{"/public", 200, "allowed"},
		{"/other", 200, "denied"},
		{"/admin", 403, ""},
	} {
		md = nil
		w := httptest.NewRecorder()
		s := filter.NewStream(w, httptest.NewRequest("GET", tc.path, nil), nil)
		s.Routing.Path, s.Routing.Method, s.Routing.Authority, s.Routing.Scheme = tc.path, "GET", "h", "http"
		h.ServeStream(s)
		if w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, w.Code, tc.status)
		}
		if got := md[rbacfilter.MetadataNamespace]["istio_dry_run_allow_shadow_engine_result"]; tc.shadow != "" && got != tc.shadow {
			t.Errorf("%s: dry-run result %v, want %s", tc.path, got, tc.shadow)
		}
	}
	for name, want := range map[string]uint64{
		"http.rbac.allowed": 2,
		"http.rbac.denied":  1,
		"http.rbac.istio_dry_run_allow_.shadow_allowed": 1,
		"http.rbac.istio_dry_run_allow_.shadow_denied":  1,
	} {
		if got := stats.Get(name); got != want {
			t.Errorf("%s = %d, want %d (all: %v)", name, got, want, stats.Names())
		}
	}
}
