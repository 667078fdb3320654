package rbac

import (
	"fmt"
	"net/netip"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellismesh/trellis/internal/dataplane/route"
	"github.com/trellismesh/trellis/internal/dataplane/strmatch"
)

func mustCompile(t testing.TB, js string) *Engine {
	t.Helper()
	r := &rbacv3.RBAC{}
	if err := protojson.Unmarshal([]byte(js), r); err != nil {
		t.Fatalf("decoding %s: %v", js, err)
	}
	e, err := Compile(r)
	if err != nil {
		t.Fatalf("compiling %s: %v", js, err)
	}
	return e
}

func req(method, authority, path string, headers map[string][]string) *route.Request {
	return &route.Request{Method: method, Scheme: "http", Authority: authority, Path: path, Headers: route.HeaderMap(headers)}
}

func TestEvaluate(t *testing.T) {
	peer := "spiffe://cluster.local/ns/a/sa/b"
	base := func() Input {
		return Input{
			Request:      req("GET", "svc.example.com", "/public/x?q=1", map[string][]string{"x-role": {"user"}}),
			Destination:  netip.MustParseAddrPort("10.0.0.7:8080"),
			DirectRemote: netip.MustParseAddrPort("10.1.2.3:40000"),
		}
	}
	cases := []struct {
		name   string
		rbac   string
		mutate func(*Input)
		allow  bool
		policy string
	}{
		{"allow empty denies", `{"action":"ALLOW"}`, nil, false, ""},
		{"deny empty allows", `{"action":"DENY"}`, nil, true, ""},
		{"allow any", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"path prefix ignores query", `{"policies":{"p":{"permissions":[{"urlPath":{"path":{"prefix":"/public/"}}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"path exact not with query", `{"policies":{"p":{"permissions":[{"urlPath":{"path":{"exact":"/public/x"}}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"path mismatch", `{"policies":{"p":{"permissions":[{"urlPath":{"path":{"prefix":"/admin"}}}],"principals":[{"any":true}]}}}`, nil, false, ""},
		{"method and path", `{"policies":{"p":{"permissions":[{"andRules":{"rules":[{"header":{"name":":method","stringMatch":{"exact":"GET"}}},{"urlPath":{"path":{"prefix":"/public"}}}]}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"host ignore case", `{"policies":{"p":{"permissions":[{"header":{"name":":authority","stringMatch":{"exact":"SVC.example.com","ignoreCase":true}}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"deny header joined values", `{"action":"DENY","policies":{"d":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-role","stringMatch":{"suffix":"admin"}}}]}}}`,
			func(in *Input) { in.Request.Headers = route.HeaderMap{"x-role": {"user", "admin"}} }, false, "d"},
		{"absent header no match", `{"action":"DENY","policies":{"d":{"permissions":[{"any":true}],"principals":[{"header":{"name":"x-missing","stringMatch":{"exact":""}}}]}}}`, nil, true, ""},
		{"present match false matches absent", `{"policies":{"p":{"permissions":[{"header":{"name":"x-missing","presentMatch":false}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"not rule", `{"policies":{"p":{"permissions":[{"notRule":{"urlPath":{"path":{"prefix":"/admin"}}}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"port", `{"policies":{"p":{"permissions":[{"destinationPort":8080}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"port range", `{"policies":{"p":{"permissions":[{"destinationPortRange":{"start":9000,"end":9100}}],"principals":[{"any":true}]}}}`, nil, false, ""},
		{"dest ip", `{"policies":{"p":{"permissions":[{"destinationIp":{"addressPrefix":"10.0.0.0","prefixLen":24}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"direct remote ip", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"directRemoteIp":{"addressPrefix":"10.1.0.0","prefixLen":16}}]}}}`, nil, true, "p"},
		{"remote ip from xff", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"remoteIp":{"addressPrefix":"192.0.2.9","prefixLen":32}}]}}}`,
			func(in *Input) { in.Remote = netip.MustParseAddr("192.0.2.9") }, true, "p"},
		{"authenticated exact", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{"principalName":{"exact":"spiffe://cluster.local/ns/a/sa/b"}}}]}}}`,
			func(in *Input) { in.Authenticated, in.PeerIdentity = true, peer }, true, "p"},
		{"authenticated no prefix leak", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{"principalName":{"exact":"spiffe://cluster.local/ns/a/sa/b"}}}]}}}`,
			func(in *Input) { in.Authenticated, in.PeerIdentity = true, peer+"b" }, false, ""},
		{"authenticated needs mTLS", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{}}]}}}`, nil, false, ""},
		{"namespace regex", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"authenticated":{"principalName":{"safeRegex":{"regex":".*/ns/a/.*"}}}}]}}}`,
			func(in *Input) { in.Authenticated, in.PeerIdentity = true, peer }, true, "p"},
		{"deny namespace fails closed without identity", `{"action":"DENY","policies":{"d":{"permissions":[{"any":true}],"principals":[{"notId":{"authenticated":{"principalName":{"safeRegex":{"regex":".*/ns/foo/.*"}}}}}]}}}`, nil, false, "d"},
		{"sni", `{"policies":{"p":{"permissions":[{"requestedServerName":{"suffix":".example.com"}}],"principals":[{"any":true}]}}}`,
			func(in *Input) { in.SNI = "a.example.com" }, true, "p"},
		{"jwt claim metadata", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"metadata":{"filter":"envoy.filters.http.jwt_authn","path":[{"key":"payload"},{"key":"groups"}],"value":{"listMatch":{"oneOf":{"stringMatch":{"exact":"admin"}}}}}}]}}}`,
			func(in *Input) {
				in.Metadata = Metadata{"envoy.filters.http.jwt_authn": {"payload": map[string]any{"groups": []any{"dev", "admin"}}}}
			}, true, "p"},
		{"jwt claim absent", `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"metadata":{"filter":"envoy.filters.http.jwt_authn","path":[{"key":"payload"},{"key":"iss"}],"value":{"stringMatch":{"exact":"x"}}}}]}}}`, nil, false, ""},
		{"uri template one segment", `{"policies":{"p":{"permissions":[{"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/public/*"}}}],"principals":[{"any":true}]}}}`, nil, true, "p"},
		{"first policy by name", `{"action":"DENY","policies":{"b":{"permissions":[{"any":true}],"principals":[{"any":true}]},"a":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`, nil, false, "a"},
		{"log allows", `{"action":"LOG","policies":{"l":{"permissions":[{"any":true}],"principals":[{"any":true}]}}}`, nil, true, "l"},
		{"l4 has no headers", `{"policies":{"p":{"permissions":[{"header":{"name":":method","presentMatch":true}}],"principals":[{"any":true}]}}}`,
			func(in *Input) { in.Request = nil }, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := mustCompile(t, tc.rbac)
			in := base()
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			d := e.Evaluate(&in)
			if d.Allowed != tc.allow || d.Policy != tc.policy {
				t.Errorf("got allowed=%v policy=%q, want %v %q", d.Allowed, d.Policy, tc.allow, tc.policy)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	cases := map[string]string{
		"filter state":   `{"policies":{"p":{"permissions":[{"any":true}],"principals":[{"filterState":{"key":"k","stringMatch":{"exact":"v"}}}]}}}`,
		"bad regex":      `{"policies":{"p":{"permissions":[{"urlPath":{"path":{"safeRegex":{"regex":"a)|(b"}}}}],"principals":[{"any":true}]}}}`,
		"bad template":   `{"policies":{"p":{"permissions":[{"uriTemplate":{"name":"t","typedConfig":{"@type":"type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig","pathTemplate":"/**/x"}}}],"principals":[{"any":true}]}}}`,
		"custom matcher": `{"policies":{"p":{"permissions":[{"matcher":{"name":"m","typedConfig":{"@type":"type.googleapis.com/google.protobuf.Empty"}}}],"principals":[{"any":true}]}}}`,
	}
	for name, js := range cases {
		t.Run(name, func(t *testing.T) {
			r := &rbacv3.RBAC{}
			if err := protojson.Unmarshal([]byte(js), r); err != nil {
				t.Fatal(err)
			}
			if _, err := Compile(r); err == nil {
				t.Errorf("Compile accepted %s", js)
			}
		})
	}
}

func TestURITemplate(t *testing.T) {
	cases := []struct {
		tmpl  string
		path  string
		match bool
	}{
		{"/a/*", "/a/b", true},
		{"/a/*", "/a/b/c", false},
		{"/a/*", "/a/", false},
		{"/a/**", "/a/b/c", true},
		{"/a/**", "/a/", true},
		{"/a/*/c", "/a/b/c", true},
		{"/a/*/c", "/a/b/d", false},
		{"/**.mpd", "/x/y/z.mpd", true},
		{"/v/{id}", "/v/42", true},
		{"/v/{id=**}", "/v/4/2", true},
		{"/admin", "/admin", true},
		{"/admin", "/admin/", false},
	}
	for _, tc := range cases {
		re, err := CompileURITemplate(tc.tmpl)
		if err != nil {
			t.Errorf("%s: %v", tc.tmpl, err)
			continue
		}
		if got := re.MatchString(tc.path); got != tc.match {
			t.Errorf("%s on %s: got %v, want %v", tc.tmpl, tc.path, got, tc.match)
		}
	}
	for _, bad := range []string{"a/*", "/**/x", "/a{b}", "/{1x}", "/{a}/{a}", "/a/*b/c", "/{a=b/*}"} {
		if _, err := CompileURITemplate(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestAndOrdersCheapestFirst: an and evaluates integer rules, then paths,
// then headers, then regexes (a policy set mostly fails early), keeping
// the given order among equals.
func TestAndOrdersCheapestFirst(t *testing.T) {
	hdr := &headerRule{name: ":method", sm: strmatch.Matcher{Kind: strmatch.Exact, Value: "GET"}}
	re := &urlPathRule{sm: strmatch.Matcher{Kind: strmatch.Regex}}
	path := &urlPathRule{sm: strmatch.Matcher{Kind: strmatch.Prefix, Value: "/a"}}
	port := portRule{lo: 80, hi: 81}
	got := and([]matcher{re, orRule{hdr, hdr}, path, port}).(andRule)
	want := []matcher{port, path, orRule{hdr, hdr}, re}
	if len(got) != len(want) {
		t.Fatalf("got %d rules", len(got))
	}
	for i := range want {
		if fmt.Sprintf("%T %v", got[i], got[i]) != fmt.Sprintf("%T %v", want[i], want[i]) {
			t.Errorf("rule %d is %T, want %T", i, got[i], want[i])
		}
	}
}
