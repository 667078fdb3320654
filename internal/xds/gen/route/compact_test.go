package route

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// effectiveRetry is the retry policy Envoy applies to a route: its own,
// else its virtual host's. An empty policy is the same as none.
func effectiveRetry(vh *routev3.VirtualHost, r *routev3.Route) *routev3.RetryPolicy {
	p := r.GetRoute().GetRetryPolicy()
	if p == nil {
		p = vh.GetRetryPolicy()
	}
	if p != nil && proto.Size(p) == 0 {
		return nil
	}
	return p
}

func vsNamed(t *testing.T, sc *model.Scope, name string) config.Config {
	t.Helper()
	for _, c := range sc.VirtualServices {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no VirtualService %q", name)
	return config.Config{}
}

// TestSharedRetryPolicy checks that a retry policy repeated on a virtual
// host's routes moves to the virtual host while every route keeps the
// policy Envoy applies to it.
func TestSharedRetryPolicy(t *testing.T) {
	for _, generator := range []string{"", model.GeneratorGRPC} {
		f := fixture{files: []string{"testdata/services.yaml", "testdata/rewrite_retries.yaml"}, generator: generator}
		sc := f.scope(t)
		want, err := HTTPRoutes(sc, vsNamed(t, sc, "reviews-rewrite"), 9080) // each route with its own policy
		if err != nil {
			t.Fatal(err)
		}
		rc := build(t, f, []string{"9080"})[0]
		vh := vhostByName(t, rc, "reviews.default.svc.cluster.local:9080")
		if !proto.Equal(vh.GetRetryPolicy(), retryPolicy(nil, false)) {
			t.Errorf("%q: virtual host retry policy = %v, want the default", generator, vh.GetRetryPolicy())
		}
		if len(vh.GetRoutes()) != len(want) {
			t.Fatalf("%q: %d routes, want %d", generator, len(vh.GetRoutes()), len(want))
		}
		for i, r := range vh.GetRoutes() {
			if got, w := effectiveRetry(vh, r), want[i].GetRoute().GetRetryPolicy(); !proto.Equal(got, w) {
				t.Errorf("%q: route %q retries with %v, want %v", generator, r.GetName(), got, w)
			}
			p := r.GetRoute().GetRetryPolicy()
			switch r.GetName() {
			case "rewrite", "regex-rewrite", "zero-timeout":
				if p != nil {
					t.Errorf("%q: route %q repeats the shared policy", generator, r.GetName())
				}
			case "no-retries":
				// Explicit, or it would take the virtual host's.
				if p == nil || proto.Size(p) != 0 {
					t.Errorf("%q: route %q retry policy = %v, want an empty one", generator, r.GetName(), p)
				}
			default:
				if !proto.Equal(p, want[i].GetRoute().GetRetryPolicy()) {
					t.Errorf("%q: route %q lost its own policy: %v", generator, r.GetName(), p)
				}
			}
		}
		// A lone default route's policy moves too (one byte shorter).
		ratings := vhostByName(t, rc, "ratings.default.svc.cluster.local:9080")
		if !proto.Equal(ratings.GetRetryPolicy(), retryPolicy(nil, false)) || ratings.GetRoutes()[0].GetRoute().GetRetryPolicy() != nil {
			t.Errorf("%q: single-route virtual host: vhost policy %v, route policy %v", generator,
				ratings.GetRetryPolicy(), ratings.GetRoutes()[0].GetRoute().GetRetryPolicy())
		}
	}
}

func TestShareRetryPolicyCases(t *testing.T) {
	def := func() *routev3.RetryPolicy { return retryPolicy(nil, false) }
	custom := func() *routev3.RetryPolicy { p := retryPolicy(nil, false); p.NumRetries.Value = 7; return p }
	fwd := func(p *routev3.RetryPolicy) *routev3.Route {
		return &routev3.Route{Action: &routev3.Route_Route{Route: &routev3.RouteAction{RetryPolicy: p}}}
	}
	redirect := &routev3.Route{Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{HostRedirect: "x"}}}
	cases := []struct {
		name   string
		routes []*routev3.Route
		shared *routev3.RetryPolicy
	}{
		{"one route", []*routev3.Route{fwd(def())}, def()},
		{"one route without retries", []*routev3.Route{fwd(nil)}, nil},
		{"one route and a redirect", []*routev3.Route{fwd(def()), redirect}, def()},
		{"redirect only", []*routev3.Route{redirect}, nil},
		{"all default", []*routev3.Route{fwd(def()), fwd(def()), redirect}, def()},
		{"all custom", []*routev3.Route{fwd(custom()), fwd(custom())}, custom()},
		{"default, custom, none", []*routev3.Route{fwd(def()), fwd(custom()), fwd(nil)}, nil},
		{"most common wins", []*routev3.Route{fwd(custom()), fwd(def()), fwd(nil), fwd(def())}, def()},
		{"no policies", []*routev3.Route{fwd(nil), fwd(nil)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := make([]*routev3.RetryPolicy, len(tc.routes))
			for i, r := range tc.routes {
				before[i] = proto.Clone(r).(*routev3.Route).GetRoute().GetRetryPolicy()
			}
			shared := shareRetryPolicy(tc.routes)
			if !proto.Equal(shared, tc.shared) {
				t.Errorf("shared = %v, want %v", shared, tc.shared)
			}
			vh := &routev3.VirtualHost{RetryPolicy: shared, Routes: tc.routes}
			for i, r := range tc.routes {
				if r.GetRoute() == nil {
					continue
				}
				if got := effectiveRetry(vh, r); !proto.Equal(got, before[i]) {
					t.Errorf("route %d retries with %v, want %v", i, got, before[i])
				}
			}
		})
	}
}

// TestSniffedKeepsVirtualHost checks that the virtual host of a sniffed
// route configuration is the port's, domains aside (retry policy included).
func TestSniffedKeepsVirtualHost(t *testing.T) {
	const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sniffed, namespace: default}
spec:
  hosts: [sniffed.default.svc.cluster.local]
  addresses: [10.0.0.70]
  ports: [{number: 7070, name: app}]
  resolution: STATIC
  endpoints: [{address: 10.1.0.9}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sniffed, namespace: default}
spec:
  hosts: [sniffed]
  http:
  - name: canary
    match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: sniffed, subset: b}}]
  - name: rest
    route: [{destination: {host: sniffed, subset: a}}]
`
	sc := fixture{}.scopeOf(gentest.YAML(t, yaml))
	const name = "sniffed.default.svc.cluster.local:7070"
	rcs := Build(sc, []string{"7070", name})
	for _, rc := range rcs {
		validate(t, rc)
	}
	port := vhostByName(t, rcs[0], name)
	sniffed := vhostByName(t, rcs[1], name)
	if port.GetRetryPolicy() == nil {
		t.Fatal("the port's virtual host has no shared retry policy; the test needs one")
	}
	if len(rcs[1].GetVirtualHosts()) != 1 || len(sniffed.GetDomains()) != 1 || sniffed.GetDomains()[0] != "*" {
		t.Fatalf("sniffed configuration = %v", rcs[1].GetVirtualHosts())
	}
	a := proto.Clone(port).(*routev3.VirtualHost)
	b := proto.Clone(sniffed).(*routev3.VirtualHost)
	a.Domains, b.Domains = nil, nil
	if !proto.Equal(a, b) {
		t.Errorf("sniffed virtual host differs from the port's:\n%v\n%v", b, a)
	}
}

// TestIgnorePortInHostMatching checks Istio's (≥ 1.20) outbound host
// matching: outbound and sniffed configurations ignore the Host port and
// list no host:port domain; inbound and unknown names are as before;
// proxyless gRPC, which cannot ignore ports, keeps the host:port forms.
func TestIgnorePortInHostMatching(t *testing.T) {
	files := []string{"testdata/services.yaml", "testdata/hosts.yaml"}
	names := []string{"80", "9080", "sniffed.default.svc.cluster.local:7070", "inbound|9080||", "unknown-name"}
	want := []bool{true, true, true, false, false}
	rcs := build(t, fixture{files: files, ip: "10.1.0.9"}, names)
	for i, rc := range rcs {
		if rc.GetIgnorePortInHostMatching() != want[i] {
			t.Errorf("%s: ignore_port_in_host_matching = %v, want %v", rc.GetName(), rc.GetIgnorePortInHostMatching(), want[i])
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, d := range vh.GetDomains() {
				if i := strings.LastIndexByte(d, ':'); i >= 0 && !strings.HasSuffix(d, "]") {
					t.Errorf("%s: virtual host %s has domain %q with a port", rc.GetName(), vh.GetName(), d)
				}
			}
		}
	}
	vhs, err := VirtualHosts(fixture{files: files, generator: model.GeneratorGRPC}.scope(t), 9080)
	if err != nil {
		t.Fatal(err)
	}
	for _, vh := range vhs {
		found := false
		for _, d := range vh.GetDomains() {
			found = found || strings.HasSuffix(d, ":9080")
		}
		if !found {
			t.Errorf("gRPC virtual host %s has no host:port domain: %v", vh.GetName(), vh.GetDomains())
		}
	}
}
