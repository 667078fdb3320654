package route

import (
	"strconv"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

func vhostByName(t *testing.T, rc *routev3.RouteConfiguration, name string) *routev3.VirtualHost {
	t.Helper()
	for _, vh := range rc.GetVirtualHosts() {
		if vh.GetName() == name {
			return vh
		}
	}
	t.Fatalf("route configuration %q has no virtual host %q", rc.GetName(), name)
	return nil
}

func routeNames(vh *routev3.VirtualHost) []string {
	var out []string
	for _, r := range vh.GetRoutes() {
		out = append(out, r.GetName())
	}
	return out
}

func TestWeightedClustersBookinfo8020(t *testing.T) {
	f := fixture{files: []string{
		gentest.Bookinfo(),
		gentest.Sample(t, "bookinfo/networking/destination-rule-all.yaml"),
		gentest.Sample(t, "bookinfo/networking/virtual-service-reviews-80-20.yaml"),
	}}
	rc := build(t, f, []string{"9080"})[0]
	vh := vhostByName(t, rc, "reviews.default.svc.cluster.local:9080")
	if len(vh.GetRoutes()) != 1 {
		t.Fatalf("got %d routes, want 1", len(vh.GetRoutes()))
	}
	wc := vh.GetRoutes()[0].GetRoute().GetWeightedClusters()
	type cw struct {
		Name   string
		Weight uint32
	}
	var got []cw
	total := uint32(0)
	for _, c := range wc.GetClusters() {
		got = append(got, cw{c.GetName(), c.GetWeight().GetValue()})
		total += c.GetWeight().GetValue()
	}
	want := []cw{
		{"outbound|9080|v1|reviews.default.svc.cluster.local", 80},
		{"outbound|9080|v2|reviews.default.svc.cluster.local", 20},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("weighted clusters (-want +got):\n%s", d)
	}
	if total != 100 {
		t.Errorf("weights sum to %d, want 100", total)
	}
}

func TestSourceSelection(t *testing.T) {
	files := []string{"testdata/services.yaml", "testdata/source.yaml"}
	cases := []struct {
		name      string
		namespace string
		labels    map[string]string
		port      string
		want      []string
	}{
		{"v1 on 8080", "", map[string]string{"app": "sleep", "version": "v1"}, "8080", []string{"from-sleep-on-8080", "mesh-gateway", "rest"}},
		{"v2 on 8080", "", map[string]string{"app": "sleep", "version": "v2"}, "8080", []string{"from-v2"}},
		{"other app", "", map[string]string{"app": "web"}, "8080", []string{"mesh-gateway", "rest"}},
		{"other namespace", "other", map[string]string{"app": "web"}, "8080", []string{"from-other-ns"}},
		{"v1 on 9090", "", map[string]string{"app": "sleep", "version": "v1"}, "9090", []string{"mesh-gateway", "grpc-port"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := build(t, fixture{files: files, namespace: tc.namespace, labels: tc.labels}, []string{tc.port})[0]
			vh := vhostByName(t, rc, "multi.default.svc.cluster.local:"+tc.port)
			if d := cmp.Diff(tc.want, routeNames(vh)); d != "" {
				t.Errorf("routes (-want +got):\n%s", d)
			}
		})
	}
}

func TestHTTPRoutesNotApplicable(t *testing.T) {
	sc := fixture{files: []string{"testdata/services.yaml", "testdata/source.yaml"}, labels: map[string]string{"app": "x"}}.scope(t)
	vs := sc.VirtualServices[0]
	// A VirtualService whose only match selects port 8080 yields nothing
	// on 9090 (the service keeps its default route there), without error.
	spec := &networking.VirtualService{Hosts: []string{"multi"}, Http: []*networking.HTTPRoute{{
		Match: []*networking.HTTPMatchRequest{{Port: 8080}},
		Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "multi"}}},
	}}}
	vs.Spec = spec
	routes, err := HTTPRoutes(sc, vs, 9090)
	if err != nil || len(routes) != 0 {
		t.Errorf("HTTPRoutes on a port no match selects = %d routes, %v; want none, nil", len(routes), err)
	}
	routes, err = HTTPRoutes(sc, vs, 8080)
	if err != nil || len(routes) != 1 {
		t.Errorf("HTTPRoutes on the matched port = %d routes, %v; want 1, nil", len(routes), err)
	}
	if _, err := HTTPRoutes(sc, config.Config{Spec: &networking.Gateway{}}, 80); err == nil {
		t.Error("HTTPRoutes accepted a Gateway spec")
	}
}

func TestDelegateMerge(t *testing.T) {
	sc := fixture{files: []string{"testdata/services.yaml", "testdata/delegate.yaml"}}.scope(t)
	var root config.Config
	for _, c := range sc.VirtualServices {
		if c.Name == "root" {
			root = c
		}
	}
	routes, err := HTTPRoutes(sc, root, 9080)
	type summary struct {
		Name, Prefix, Cluster, Timeout string
		Headers                        []string
	}
	var got []summary
	for _, r := range routes {
		s := summary{
			Name: r.GetName(), Prefix: r.GetMatch().GetPrefix(),
			Cluster: r.GetRoute().GetCluster(), Timeout: r.GetRoute().GetTimeout().AsDuration().String(),
		}
		for _, h := range r.GetMatch().GetHeaders() {
			s.Headers = append(s.Headers, h.GetName())
		}
		got = append(got, s)
	}
	want := []summary{
		// Delegate match narrowed by the root's header; its own timeout wins.
		{"to-api-v2", "/api/v2", "outbound|9080|v2|ratings.default.svc.cluster.local", "1s", []string{"x-team", ":method"}},
		// No match of its own: the root's; no timeout: the root's; short
		// host resolved in the delegate's namespace.
		{"to-api-any", "/api", "outbound|9080||reviews-api.team.svc.cluster.local", "3s", []string{"x-team"}},
		{"looping-ok", "/loop", "outbound|9080||ratings.default.svc.cluster.local", "0s", nil},
		{"rest", "/", "outbound|9080||reviews.default.svc.cluster.local", "0s", nil},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("merged routes (-want +got):\n%s", d)
	}
	checkErrs(t, err, []string{
		`"missing": delegate default/nope not found`,
		`"looping": delegate team/loop: route "again" delegates to team/loop: delegation loop`,
		`"private": delegate team/private is not exported`,
		`"not-a-delegate": delegate default/ratings-root has hosts`,
		`"to-api": delegate team/api: route "conflict" matches nothing`,
	})
}

func TestMergeMatchConflicts(t *testing.T) {
	prefix := func(s string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: s}}
	}
	exact := func(s string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Exact{Exact: s}}
	}
	regex := func(s string) *networking.StringMatch {
		return &networking.StringMatch{MatchType: &networking.StringMatch_Regex{Regex: s}}
	}
	cases := []struct {
		name       string
		root, leaf *networking.StringMatch
		conflict   bool
	}{
		{"unset root", nil, prefix("/a"), false},
		{"unset leaf", prefix("/a"), nil, false},
		{"narrower prefix", prefix("/a"), prefix("/a/b"), false},
		{"wider prefix", prefix("/a/b"), prefix("/a"), true},
		{"exact under prefix", prefix("/a"), exact("/a/x"), false},
		{"exact outside prefix", prefix("/a"), exact("/b"), true},
		{"same exact", exact("/a"), exact("/a"), false},
		{"other exact", exact("/a"), exact("/b"), true},
		{"prefix under exact", exact("/a"), prefix("/a"), true},
		{"regex root", regex(".*"), prefix("/a"), true},
		{"regex leaf", prefix("/a"), regex("/a.*"), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := stringMatchConflict(tc.root, tc.leaf); got != tc.conflict {
				t.Errorf("conflict = %v, want %v", got, tc.conflict)
			}
		})
	}
}

func TestFaultPercentages(t *testing.T) {
	pct := func(v float64) *networking.Percent { return &networking.Percent{Value: v} }
	million := typev3.FractionalPercent_MILLION
	hundred := typev3.FractionalPercent_HUNDRED
	cases := []struct {
		name      string
		in        *networking.HTTPFaultInjection
		wantDelay *typev3.FractionalPercent
		wantAbort *typev3.FractionalPercent
		wantErr   string
	}{
		{
			name: "decimal delay",
			in: &networking.HTTPFaultInjection{Delay: &networking.HTTPFaultInjection_Delay{
				HttpDelayType: &networking.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: durationpb.New(5e9)},
				Percentage:    pct(0.1),
			}},
			wantDelay: &typev3.FractionalPercent{Numerator: 1000, Denominator: million},
		},
		{
			name: "legacy integer percent",
			in: &networking.HTTPFaultInjection{Delay: &networking.HTTPFaultInjection_Delay{
				HttpDelayType: &networking.HTTPFaultInjection_Delay_FixedDelay{FixedDelay: durationpb.New(1e9)},
				Percent:       30,
			}},
			wantDelay: &typev3.FractionalPercent{Numerator: 30, Denominator: hundred},
		},
		{
			name: "abort 33.3",
			in: &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
				ErrorType:  &networking.HTTPFaultInjection_Abort_HttpStatus{HttpStatus: 503},
				Percentage: pct(33.3),
			}},
			wantAbort: &typev3.FractionalPercent{Numerator: 333000, Denominator: million},
		},
		{
			name: "abort without percentage never fires",
			in: &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
				ErrorType: &networking.HTTPFaultInjection_Abort_GrpcStatus{GrpcStatus: "DEADLINE_EXCEEDED"},
			}},
		},
		{
			name: "unknown grpc status",
			in: &networking.HTTPFaultInjection{Abort: &networking.HTTPFaultInjection_Abort{
				ErrorType: &networking.HTTPFaultInjection_Abort_GrpcStatus{GrpcStatus: "NOPE"},
			}},
			wantErr: `unknown grpcStatus "NOPE"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := translateFault(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var f faultv3.HTTPFault
			if err := a.UnmarshalTo(&f); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.wantDelay, f.GetDelay().GetPercentage(), protocmp.Transform()); d != "" {
				t.Errorf("delay percentage (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.wantAbort, f.GetAbort().GetPercentage(), protocmp.Transform()); d != "" {
				t.Errorf("abort percentage (-want +got):\n%s", d)
			}
			if tc.in.GetAbort().GetGrpcStatus() == "DEADLINE_EXCEEDED" && f.GetAbort().GetGrpcStatus() != 4 {
				t.Errorf("grpc status = %d, want 4", f.GetAbort().GetGrpcStatus())
			}
		})
	}
}

func TestParseRetryOn(t *testing.T) {
	cases := []struct {
		in        string
		wantOn    string
		wantCodes []uint32
	}{
		{"5xx", "5xx", []uint32{}},
		{"cancelled,deadline-exceeded,internal,resource-exhausted,unavailable", "cancelled,deadline-exceeded,internal,resource-exhausted,unavailable", []uint32{}},
		{"gateway-error, 503 ,429", "gateway-error", []uint32{503, 429}},
		{"599,1234,reset", "599,1234,reset", []uint32{}}, // not HTTP status codes Go knows
		{",,connect-failure,", "connect-failure", []uint32{}},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			on, codes := parseRetryOn(tc.in)
			if on != tc.wantOn || !cmp.Equal(codes, tc.wantCodes) {
				t.Errorf("parseRetryOn(%q) = %q, %v; want %q, %v", tc.in, on, codes, tc.wantOn, tc.wantCodes)
			}
		})
	}
}

func TestRetryPolicy(t *testing.T) {
	def := retryPolicy(nil, false)
	if def.GetNumRetries().GetValue() != 2 || def.GetRetryOn() != defaultRetryOn ||
		def.GetHostSelectionRetryMaxAttempts() != 5 || !cmp.Equal(def.GetRetriableStatusCodes(), []uint32{503}) ||
		len(def.GetRetryHostPredicate()) != 1 || def.GetRetryHostPredicate()[0].GetName() != previousHostsPredicate {
		t.Errorf("default policy = %v", def)
	}
	if p := retryPolicy(nil, true); len(p.GetRetryHostPredicate()) != 0 {
		t.Errorf("consistent-hash default keeps previous_hosts: %v", p)
	}
	if p := retryPolicy(&networking.HTTPRetry{Attempts: 0, RetryOn: "5xx"}, false); p != nil {
		t.Errorf("attempts 0 = %v, want no policy", p)
	}
	p := retryPolicy(&networking.HTTPRetry{Attempts: 4, RetryOn: "503", PerTryTimeout: durationpb.New(2e9), RetryIgnorePreviousHosts: wrapperspb.Bool(true)}, true)
	if p.GetRetryOn() != "retriable-status-codes" || p.GetNumRetries().GetValue() != 4 ||
		p.GetPerTryTimeout().AsDuration().Seconds() != 2 || len(p.GetRetryHostPredicate()) != 1 {
		t.Errorf("custom policy = %v", p)
	}

	// The mesh's defaultHttpRetryPolicy replaces Istio's default.
	f := fixture{
		files: []string{"testdata/services.yaml"},
		mesh: func(m *meshconfig.MeshConfig) {
			m.DefaultHttpRetryPolicy = &networking.HTTPRetry{Attempts: 7, RetryOn: "reset"}
		},
	}
	rc := build(t, f, []string{"9080"})[0]
	vh := vhostByName(t, rc, "reviews.default.svc.cluster.local:9080")
	got := effectiveRetry(vh, vh.GetRoutes()[0])
	if got.GetNumRetries().GetValue() != 7 || got.GetRetryOn() != "reset" {
		t.Errorf("mesh default retry policy not applied: %v", got)
	}
}

func TestParseRouteName(t *testing.T) {
	cases := []struct {
		name string
		kind routeKind
		host string
		port uint32
	}{
		{"9080", outboundRoute, "", 9080},
		{"reviews.default.svc.cluster.local:9080", sniffedRoute, "reviews.default.svc.cluster.local", 9080},
		{"inbound|8080||", inboundRoute, "", 8080},
		{"inbound|8080|http|", unknownRoute, "", 0},
		{"0", unknownRoute, "", 0},
		{"70000", unknownRoute, "", 0},
		{"http_proxy", unknownRoute, "", 0},
		{"host:", unknownRoute, "", 0},
	}
	for _, tc := range cases {
		kind, host, port := parseRouteName(tc.name)
		if kind != tc.kind || host != tc.host || port != tc.port {
			t.Errorf("parseRouteName(%q) = %v, %q, %d; want %v, %q, %d", tc.name, kind, host, port, tc.kind, tc.host, tc.port)
		}
	}
}

func TestAltHosts(t *testing.T) {
	cases := []struct {
		host, proxyDom string
		want           []string
	}{
		{"reviews.default.svc.cluster.local", "default.svc.cluster.local",
			[]string{"reviews", "reviews:80", "reviews.default.svc", "reviews.default.svc:80", "reviews.default", "reviews.default:80"}},
		{"catalog.other.svc.cluster.local", "default.svc.cluster.local",
			[]string{"catalog.other", "catalog.other:80", "catalog.other.svc", "catalog.other.svc:80"}},
		{"api.example.com", "default.svc.cluster.local", nil},
		{"foo.svc.cluster.local", "default.svc.cluster.local", nil},
		// A non-Kubernetes proxy domain: the unshared labels, plus the next one.
		{"foo.local.campus.net", "local.campus.net", []string{"foo", "foo:80"}},
		{"foo.bar.campus.net", "local.campus.net", []string{"foo.bar", "foo.bar:80", "foo.bar.campus", "foo.bar.campus:80"}},
		{"foobar.com", "local.net", nil},
	}
	for _, tc := range cases {
		if got := altHosts(tc.host, 80, tc.proxyDom); !cmp.Equal(got, tc.want) {
			t.Errorf("altHosts(%q, %q) = %q, want %q", tc.host, tc.proxyDom, got, tc.want)
		}
		// Without a port: the same names, without their host:port forms.
		var bare []string
		for _, h := range tc.want {
			if !strings.HasSuffix(h, ":80") {
				bare = append(bare, h)
			}
		}
		if got := altHosts(tc.host, noPort, tc.proxyDom); !cmp.Equal(got, bare) {
			t.Errorf("altHosts(%q, noPort, %q) = %q, want %q", tc.host, tc.proxyDom, got, bare)
		}
	}
}

func TestDuplicateDomains(t *testing.T) {
	svc := func(host string, addr ...string) *model.Service {
		return &model.Service{Hostname: host, Namespace: "default", Addresses: addr,
			Ports: []model.Port{{Name: "http", Number: 80, Protocol: model.ProtocolHTTP}}}
	}
	sc := fixture{}.scopeWith(nil, []*model.Service{svc("a.example.com", "10.0.0.1"), svc("b.example.com", "10.0.0.1", "::")})
	vhs, err := VirtualHosts(sc, 80)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, vh := range vhs {
		got[vh.GetName()] = vh.GetDomains()
	}
	want := map[string][]string{
		"a.example.com:80": {"a.example.com", "10.0.0.1"},
		"b.example.com:80": {"b.example.com"}, // shared VIP kept by the first; :: is no VIP
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("domains (-want +got):\n%s", d)
	}
}

func TestCatchAll(t *testing.T) {
	registryOnly := func(m *meshconfig.MeshConfig) {
		m.OutboundTrafficPolicy = &meshconfig.MeshConfig_OutboundTrafficPolicy{Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY}
	}
	sidecar := func(policy *networking.OutboundTrafficPolicy) config.Config {
		return config.Config{
			Meta: config.Meta{Kind: schema.Sidecar, Name: "default", Namespace: "default"},
			Spec: &networking.Sidecar{OutboundTrafficPolicy: policy},
		}
	}
	cases := []struct {
		name    string
		mesh    func(*meshconfig.MeshConfig)
		configs []config.Config
		vhost   string
		action  string
	}{
		{"allow any", nil, nil, allowAnyName, passthroughCluster},
		{"registry only", registryOnly, nil, blockAllName, "502"},
		{"sidecar allows", registryOnly, []config.Config{sidecar(&networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_ALLOW_ANY})}, allowAnyName, passthroughCluster},
		{"sidecar blocks", nil, []config.Config{sidecar(&networking.OutboundTrafficPolicy{Mode: networking.OutboundTrafficPolicy_REGISTRY_ONLY})}, blockAllName, "502"},
		{"egress proxy", nil, []config.Config{sidecar(&networking.OutboundTrafficPolicy{
			Mode:        networking.OutboundTrafficPolicy_ALLOW_ANY,
			EgressProxy: &networking.Destination{Host: "egress.istio-system.svc.cluster.local", Subset: "proxy", Port: &networking.PortSelector{Number: 3128}},
		})}, allowAnyName, "outbound|3128|proxy|egress.istio-system.svc.cluster.local"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := fixture{mesh: tc.mesh}.scopeWith(tc.configs, nil)
			rc := Build(sc, []string{"80"})[0]
			validate(t, rc)
			vhs := rc.GetVirtualHosts()
			last := vhs[len(vhs)-1]
			if last.GetName() != tc.vhost || !cmp.Equal(last.GetDomains(), []string{"*"}) {
				t.Fatalf("catch-all = %s %v, want %s [*]", last.GetName(), last.GetDomains(), tc.vhost)
			}
			r := last.GetRoutes()[0]
			got := r.GetRoute().GetCluster()
			if dr := r.GetDirectResponse(); dr != nil {
				got = strconv.FormatUint(uint64(dr.GetStatus()), 10)
			}
			if got != tc.action {
				t.Errorf("catch-all action = %q, want %q", got, tc.action)
			}
		})
	}
}

func TestGatewaySemantics(t *testing.T) {
	sc := fixture{}.scopeWith(nil, nil)
	vs := config.Config{
		Meta: config.Meta{Kind: schema.VirtualService, Name: "http-route", Namespace: "default",
			Annotations: map[string]string{"internal.istio.io/route-semantics": "gateway"}},
		Spec: &networking.VirtualService{Hosts: []string{"a.example.com"}, Http: []*networking.HTTPRoute{
			{
				Name:    "strip",
				Match:   []*networking.HTTPMatchRequest{{Uri: &networking.StringMatch{MatchType: &networking.StringMatch_Prefix{Prefix: "/api/"}}}},
				Rewrite: &networking.HTTPRewrite{Uri: "/"},
				Route:   []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "a.example.com"}}},
			},
			{
				Name:     "prefix-redirect",
				Redirect: &networking.HTTPRedirect{Uri: "%PREFIX()%/new"},
			},
		}},
	}
	routes, err := HTTPRoutes(sc, vs, 80)
	if err != nil || len(routes) != 2 {
		t.Fatalf("HTTPRoutes = %d routes, %v", len(routes), err)
	}
	r := routes[0]
	if got := r.GetMatch().GetPathSeparatedPrefix(); got != "/api" {
		t.Errorf("path_separated_prefix = %q, want /api", got)
	}
	if got := r.GetRoute().GetRegexRewrite().GetPattern().GetRegex(); got != `^/api(/?)(.*)` {
		t.Errorf("regex rewrite = %q", got)
	}
	if r.GetRoute().GetClusterNotFoundResponseCode() != routev3.RouteAction_INTERNAL_SERVER_ERROR {
		t.Error("missing backends should answer 500")
	}
	if got := routes[1].GetRedirect().GetPrefixRewrite(); got != "/new" {
		t.Errorf("redirect prefix rewrite = %q, want /new", got)
	}
	for _, r := range routes {
		validate(t, r)
	}
}

func TestStarHostLeftOut(t *testing.T) {
	vs := config.Config{
		Meta: config.Meta{Kind: schema.VirtualService, Name: "everything", Namespace: "default"},
		Spec: &networking.VirtualService{Hosts: []string{"*"}, Http: []*networking.HTTPRoute{{
			Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "a.example.com"}}},
		}}},
	}
	rcs, err := BuildWithErrors(fixture{}.scopeWith([]config.Config{vs}, nil), []string{"80"})
	checkErrs(t, err, []string{`virtual service default/everything: host "*" would shadow the catch-all`})
	if vhs := rcs[0].GetVirtualHosts(); len(vhs) != 1 || vhs[0].GetName() != allowAnyName {
		t.Errorf("virtual hosts = %v, want only %s", vhs, allowAnyName)
	}
}
