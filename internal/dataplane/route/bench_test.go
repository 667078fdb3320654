package route

import (
	"fmt"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// benchTable has 1,000 virtual hosts shaped like Istio's (four domains
// each, plus wildcard hosts and a "*" catch-all) with a few routes each:
// a header route, an exact path, a regex, a prefix and a catch-all prefix.
func benchTable(b testing.TB) *Table {
	b.Helper()
	rc := &routev3.RouteConfiguration{Name: "9080", IgnorePortInHostMatching: true}
	cluster := func(c string) *routev3.Route_Route {
		return &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: c}}}
	}
	for i := range 1000 {
		host := fmt.Sprintf("svc-%d.ns-%d.svc.cluster.local", i, i%10)
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    host + ":9080",
			Domains: []string{host, fmt.Sprintf("svc-%d", i), fmt.Sprintf("svc-%d.ns-%d", i, i%10), fmt.Sprintf("svc-%d.ns-%d.svc", i, i%10)},
			Routes: []*routev3.Route{
				{Name: "jason", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"},
					Headers: []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
						StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "jason"}}}}}},
					Action: cluster("v2")},
				{Name: "health", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/healthz"}}, Action: cluster("health")},
				{Name: "users", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/users/[0-9]+"}}}, Action: cluster("users")},
				{Name: "api", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/api/v1"}}, Action: cluster("api")},
				{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: cluster("default")},
			},
		})
	}
	for _, d := range []string{"*.example.com", "*.api.example.com", "www.*", "*"} {
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: d, Domains: []string{d},
			Routes: []*routev3.Route{{Name: "wild", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: cluster("wild")}}})
	}
	tbl, err := Compile(rc)
	if err != nil {
		b.Fatal(err)
	}
	return tbl
}

func BenchmarkMatch(b *testing.B) {
	tbl := benchTable(b)
	cases := []struct {
		name string
		r    *Request
		want string
	}{
		{"prefix", req("GET", "svc-500.ns-0.svc.cluster.local:9080", "/reviews/1?x=y"), "default"},
		{"short-host", req("GET", "svc-999", "/api/v1/items"), "api"},
		{"header", req("GET", "svc-42", "/", "end-user", "jason"), "jason"},
		{"regex", req("GET", "svc-7.ns-7", "/users/12345"), "users"},
		{"uppercase-host", req("GET", "SVC-500.NS-0.SVC.CLUSTER.LOCAL", "/"), "default"},
		{"suffix-wildcard", req("GET", "a.b.api.example.com", "/"), "wild"},
		{"catch-all", req("GET", "unknown.host:80", "/"), "wild"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if got := tbl.Match(tc.r); got == nil || got.Name != tc.want {
				b.Fatalf("matched %q, want %q", routeName(got), tc.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				tbl.Match(tc.r)
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	benchTable(b) // warm
	b.ReportAllocs()
	for b.Loop() {
		benchTable(b)
	}
}

func TestMatchAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	tbl := benchTable(t)
	for _, r := range []*Request{
		req("GET", "svc-500.ns-0.svc.cluster.local:9080", "/reviews/1?x=y"),
		req("GET", "SVC-500", "/users/1"),
		req("GET", "svc-1", "/", "end-user", "jason"),
	} {
		if n := testing.AllocsPerRun(100, func() { tbl.Match(r) }); n != 0 {
			t.Errorf("Match(%s %s) allocates %v times, want 0", r.Authority, r.Path, n)
		}
	}
}
