package extauthz_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter/extauthz"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter/extauthz/extauthztest"
	rbacfilter "github.com/trellismesh/trellis/internal/dataplane/http/filter/rbac"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
)

type toAddr string

func (a toAddr) RoundTrip(ctx context.Context, _ string, _ router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
	req.URL.Scheme, req.URL.Host = "http", string(a)
	resp, err := http.DefaultTransport.RoundTrip(req.WithContext(ctx))
	return resp, router.Info{}, err
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func httpConfig(body *extauthzv3.BufferSettings) *extauthzv3.ExtAuthz {
	return &extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{
			ServerUri: &corev3.HttpUri{Uri: "http://authz", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "authz"}, Timeout: durationpb.New(1e9)},
			AuthorizationRequest: &extauthzv3.AuthorizationRequest{AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
				{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: extauthztest.Header}},
			}}},
		}},
		WithRequestBody: body,
		FilterEnabledMetadata: &matcherv3.MetadataMatcher{
			Filter: "envoy.filters.http.rbac",
			Path:   []*matcherv3.MetadataMatcher_PathSegment{{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "istio_ext_authz_shadow_effective_policy_id"}}},
			Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "istio-ext-authz"}}}},
		},
	}
}

// chain is a shadow RBAC filter selecting /admin, ext_authz, and a
// terminal handler echoing the body it receives.
func chain(t *testing.T, addr string, cfg *extauthzv3.ExtAuthz) filter.Handler {
	t.Helper()
	shadow, err := rbacfilter.Factory{}.Build("rbac", mustAny(t, &rbachttpv3.RBAC{
		ShadowRulesStatPrefix: "istio_ext_authz_",
		ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
			"istio-ext-authz-ns[foo]-policy[p]-rule[0]": {
				Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{
					Path: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "/admin"}}}}}}},
				Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
			}}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	ea, err := extauthz.Factory{Upstream: toAddr(addr)}.Build("ext_authz", mustAny(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ea.(*extauthz.Filter).Close() })
	end := filter.HandlerFunc(func(s *filter.Stream) {
		b, _ := io.ReadAll(s.Request.Body)
		_, _ = io.WriteString(s.Writer(), "upstream got "+string(b))
	})
	return shadow.Wrap(ea.Wrap(end))
}

func serve(h filter.Handler, method, path, body string, hdr http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	s := filter.NewStream(w, req, nil)
	s.Routing.Path, s.Routing.Method, s.Routing.Authority = path, method, "httpbin"
	h.ServeStream(s)
	return w
}

// TestBodyAndGating: only requests the shadow RBAC marks are checked; the
// body is sent up to max_request_bytes and still reaches the upstream in
// full; a longer body without allow_partial_message is 413.
func TestBodyAndGating(t *testing.T) {
	srv, addr, _ := extauthztest.Start(t)
	allow := http.Header{"X-Ext-Authz": {"allow"}}
	h := chain(t, addr, httpConfig(&extauthzv3.BufferSettings{MaxRequestBytes: 5, AllowPartialMessage: true}))
	if w := serve(h, "POST", "/public", "hello world", nil); w.Code != 200 || len(srv.Checks()) != 0 {
		t.Fatalf("/public: %d, %d checks; want 200 unchecked", w.Code, len(srv.Checks()))
	}
	w := serve(h, "POST", "/admin", "hello world", allow)
	if w.Code != 200 || w.Body.String() != "upstream got hello world" {
		t.Fatalf("/admin: %d %q", w.Code, w.Body)
	}
	if c := srv.Checks(); len(c) != 1 || c[0].Body != "hello" {
		t.Fatalf("checks %+v, want one with the first 5 body bytes", c)
	}
	strict := chain(t, addr, httpConfig(&extauthzv3.BufferSettings{MaxRequestBytes: 5}))
	if w := serve(strict, "POST", "/admin", "hello world", allow); w.Code != 413 {
		t.Errorf("oversized body without partial messages: %d, want 413", w.Code)
	}
	if w := serve(strict, "POST", "/admin", "hi", allow); w.Code != 200 || w.Body.String() != "upstream got hi" {
		t.Errorf("small body: %d %q", w.Code, w.Body)
	}
}

// TestStatusOnError: a 5xx from the service is an error, answered with
// status_on_error.
func TestStatusOnError(t *testing.T) {
	fail := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	t.Cleanup(fail.Close)
	cfg := httpConfig(nil)
	cfg.StatusOnError = &typeStatus503
	if w := serve(chain(t, fail.Listener.Addr().String(), cfg), "GET", "/admin", "", nil); w.Code != 503 {
		t.Errorf("service 500: %d, want status_on_error 503", w.Code)
	}
}

func TestBuildRejects(t *testing.T) {
	cases := map[string]*extauthzv3.ExtAuthz{
		"no service": {},
		"google_grpc": {Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "x", StatPrefix: "x"}}}}},
		"grpc without dialer": {Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "c"}}}}},
	}
	for name, cfg := range cases {
		if _, err := (extauthz.Factory{Upstream: toAddr("x")}).Build("ext_authz", mustAny(t, cfg)); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

var typeStatus503 = typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable}
