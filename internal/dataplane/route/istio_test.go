package route

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genroute "github.com/trellismesh/trellis/internal/xds/gen/route"
)

const (
	reviewsV1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
	reviewsV2 = "outbound|9080|v2|reviews.default.svc.cluster.local"
	reviewsV3 = "outbound|9080|v3|reviews.default.svc.cluster.local"
)

// istioTable generates the outbound "9080" RouteConfiguration for a sleep
// sidecar in default with the control plane's generator, from the Bookinfo
// services plus sample files and inline YAML, and compiles it.
func istioTable(t *testing.T, inline string, samples ...string) *Table {
	t.Helper()
	files := []string{gentest.Bookinfo()}
	for _, s := range samples {
		files = append(files, gentest.Sample(t, "bookinfo/networking/"+s))
	}
	cfgs := gentest.Files(t, files...)
	if inline != "" {
		cfgs = append(cfgs, gentest.YAML(t, inline)...)
	}
	sc := gentest.NewSnapshot(nil, cfgs).Scope(gentest.Proxy("10.0.0.100", "default", map[string]string{"app": "sleep"}))
	rcs, err := genroute.BuildWithErrors(sc, []string{"9080"})
	if err != nil {
		t.Fatalf("generating routes: %v", err)
	}
	tbl, err := Compile(rcs[0])
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tbl
}

func clusterOf(t *testing.T, tbl *Table, r *Request) string {
	t.Helper()
	rt := tbl.Match(r)
	if rt == nil {
		t.Fatalf("%s %s: no route", r.Authority, r.Path)
	}
	f, ok := rt.Action.(*Forward)
	if !ok {
		t.Fatalf("%s %s: action %T", r.Authority, r.Path, rt.Action)
	}
	name, _, _ := f.ClusterFor(r)
	return name
}

func TestIstioBookinfoDefaults(t *testing.T) {
	tbl := istioTable(t, "")
	for _, host := range []string{"reviews", "reviews:9080", "Reviews.default", "reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local:9080"} {
		r := req("GET", host, "/reviews/1")
		if got := clusterOf(t, tbl, r); got != "outbound|9080||reviews.default.svc.cluster.local" {
			t.Errorf("%s: cluster %q", host, got)
		}
	}
	r := req("GET", "example.com", "/")
	rt := tbl.Match(r)
	if got := clusterOf(t, tbl, r); got != "PassthroughCluster" {
		t.Errorf("unknown host: cluster %q (vhost %q), want PassthroughCluster", got, rt.VirtualHost.Name)
	}
	f := tbl.Match(req("GET", "details", "/")).Action.(*Forward)
	if f.Timeout != 0 {
		t.Errorf("Istio disables the route timeout; got %v", f.Timeout)
	}
	if f.Retry == nil || f.Retry.NumRetries != 2 || !f.Retry.PreviousHosts || !f.Retry.RetriableStatus(503) || !f.Retry.On.Has(RetryConnectFailure) {
		t.Errorf("Istio default retry policy not inherited from the virtual host: %+v", f.Retry)
	}
	if !tbl.ignorePort {
		t.Error("ignore_port_in_host_matching not honoured")
	}
}

func TestIstioJasonToV2(t *testing.T) {
	tbl := istioTable(t, "", "destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml")
	if got := clusterOf(t, tbl, req("GET", "reviews:9080", "/reviews/0", "end-user", "jason")); got != reviewsV2 {
		t.Errorf("jason: %q, want %q", got, reviewsV2)
	}
	for _, user := range []string{"", "Jason", "bob"} {
		var h []string
		if user != "" {
			h = []string{"end-user", user}
		}
		if got := clusterOf(t, tbl, req("GET", "reviews:9080", "/reviews/0", h...)); got != reviewsV3 {
			t.Errorf("user %q: %q, want %q", user, got, reviewsV3)
		}
	}
	rt := tbl.Match(req("GET", "reviews", "/", "end-user", "jason"))
	if rt.IstioConfig() != "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews" {
		t.Errorf("istio config metadata %q", rt.IstioConfig())
	}
}

func TestIstioWeights8020(t *testing.T) {
	tbl := istioTable(t, "", "destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml")
	rng := rand.New(rand.NewPCG(8020, 1))
	counts := map[string]int{}
	for range 10_000 {
		r := req("GET", "reviews", "/")
		r.Random = rng.Uint64()
		counts[clusterOf(t, tbl, r)]++
	}
	if v1 := counts[reviewsV1]; v1 < 7800 || v1 > 8200 || counts[reviewsV1]+counts[reviewsV2] != 10_000 {
		t.Errorf("80/20 over 10,000 draws: %v; want v1 8000 ± 200, the rest v2", counts)
	}
}

func TestIstioFaults(t *testing.T) {
	abort := istioTable(t, "", "destination-rule-all.yaml", "virtual-service-ratings-test-abort.yaml")
	jason := req("GET", "ratings", "/ratings/0", "end-user", "jason")
	f := abort.Match(jason).Fault(nil)
	if f == nil || f.Abort == nil || f.Abort.HTTPStatus != 500 || f.Abort.Percentage != (Fraction{1_000_000, 1_000_000}) {
		t.Fatalf("abort fault %+v", f)
	}
	if a, ok := f.AbortFor(rand.Uint64()); !ok || a.HTTPStatus != 500 {
		t.Error("100 % abort did not fire")
	}
	if abort.Match(req("GET", "ratings", "/ratings/0")).Fault(nil) != nil {
		t.Error("fault applies to other users")
	}

	delay := istioTable(t, "", "destination-rule-all.yaml", "virtual-service-ratings-test-delay.yaml")
	if d, ok := delay.Match(jason).Fault(nil).DelayFor(12345); !ok || d != 7*time.Second {
		t.Errorf("delay %v %v, want 7s", d, ok)
	}
	details := istioTable(t, "", "destination-rule-all.yaml", "fault-injection-details-v1.yaml")
	if details.Match(req("GET", "details", "/details/0")).Fault(nil) == nil {
		t.Error("details fault not decoded")
	}
}

func TestIstioRetriesTimeoutsAndMore(t *testing.T) {
	tbl := istioTable(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: api
    match:
    - uri: {prefix: /api}
    rewrite: {uri: /v1, authority: backend.internal}
    timeout: 2.5s
    retries: {attempts: 3, perTryTimeout: 1s, retryOn: "5xx,gateway-error,429"}
    headers:
      request:
        set: {x-env: prod}
        remove: [x-debug]
    mirror: {host: ratings}
    mirrorPercentage: {value: 25}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}]
      allowMethods: [GET]
    route:
    - destination: {host: reviews, subset: v1}
  - name: moved
    match:
    - uri: {exact: /old}
    redirect: {uri: /new, authority: new.example.com}
  - name: canned
    match:
    - uri: {exact: /canned}
    directResponse: {status: 503, body: {string: "try later"}}
  - name: rest
    route:
    - destination: {host: reviews, subset: v3}
`, "destination-rule-all.yaml")
	r := req("GET", "reviews", "/api/users?x=1", "x-debug", "1")
	rt := tbl.Match(r)
	if rt.Name != "api" {
		t.Fatalf("route %q, want api", rt.Name)
	}
	f := rt.Action.(*Forward)
	if f.Timeout != 2500*time.Millisecond {
		t.Errorf("timeout %v", f.Timeout)
	}
	rp := f.Retry
	if rp.NumRetries != 3 || rp.PerTryTimeout != time.Second || !rp.RetriableStatus(502) || !rp.RetriableStatus(429) || !rp.RetriableStatus(500) {
		t.Errorf("retry %+v", rp)
	}
	if p, _ := rt.UpstreamPath(r); p != "/v1/users?x=1" {
		t.Errorf("upstream path %q", p)
	}
	if a, _ := rt.UpstreamAuthority(r, nil); a != "backend.internal" {
		t.Errorf("upstream authority %q", a)
	}
	h := HeaderMap{"x-debug": {"1"}}
	rt.FinalizeRequestHeaders(h, nil)
	if h.Get("x-env") != "prod" || h.Get("x-debug") != "" {
		t.Errorf("request headers %v", h)
	}
	if len(f.Mirrors) != 1 || f.Mirrors[0].Cluster != "outbound|9080||ratings.default.svc.cluster.local" || f.Mirrors[0].Fraction != (Fraction{250_000, 1_000_000}) {
		t.Errorf("mirrors %+v", f.Mirrors)
	}
	pre := req("OPTIONS", "reviews", "/api", "origin", "https://example.com", "access-control-request-method", "GET")
	if d := tbl.Match(pre).CORS(nil).Preflight(pre); !d.Respond || d.Headers.Get("access-control-allow-methods") != "GET" {
		t.Errorf("preflight %+v", d)
	}

	old := req("GET", "reviews:9080", "/old?q")
	if loc := tbl.Match(old).Location(old); loc != "http://new.example.com/new?q" {
		t.Errorf("redirect Location %q", loc)
	}
	if d := tbl.Match(req("GET", "reviews", "/canned")).Action.(*DirectResponse); d.Status != 503 || d.Body != "try later" {
		t.Errorf("direct response %+v", d)
	}
	if got := clusterOf(t, tbl, req("GET", "reviews", "/other")); got != reviewsV3 {
		t.Errorf("rest: %q", got)
	}
}

func TestIstioDelegate(t *testing.T) {
	tbl := istioTable(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root}
spec:
  hosts: [reviews]
  http:
  - name: to-api
    match:
    - uri: {prefix: /api}
    timeout: 3s
    delegate: {name: api}
  - name: rest
    route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  http:
  - name: v2
    match:
    - uri: {prefix: /api/v2}
      headers: {x-team: {exact: blue}}
    route:
    - destination: {host: reviews, subset: v2}
  - name: other
    route:
    - destination: {host: reviews, subset: v3}
`, "destination-rule-all.yaml")
	cases := []struct {
		path    string
		headers []string
		want    string
	}{
		{"/api/v2/x", []string{"x-team", "blue"}, reviewsV2},
		{"/api/v2/x", nil, reviewsV3},
		{"/api/v1", nil, reviewsV3},
		{"/home", nil, reviewsV1},
	}
	for _, tc := range cases {
		r := req("GET", "reviews", tc.path, tc.headers...)
		if got := clusterOf(t, tbl, r); got != tc.want {
			t.Errorf("%s %v: %q, want %q", tc.path, tc.headers, got, tc.want)
		}
	}
	if f := tbl.Match(req("GET", "reviews", "/api/v1")).Action.(*Forward); f.Timeout != 3*time.Second {
		t.Errorf("delegate inherits the root timeout: %v", f.Timeout)
	}
}
