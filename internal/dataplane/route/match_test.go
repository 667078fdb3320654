package route

import (
	"strings"
	"testing"
)

// matchCase is one request against a one-route table: does the route match?
type matchCase struct {
	name string
	r    *Request
	want bool
}

func runMatch(t *testing.T, route string, cases []matchCase) {
	t.Helper()
	tbl := compileJSON(t, oneVhost(route))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tbl.Match(tc.r) != nil; got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPathMatch(t *testing.T) {
	get := func(p string) *Request { return req("GET", "h", p) }
	t.Run("prefix", func(t *testing.T) {
		runMatch(t, `{"name":"r","match":{"prefix":"/api"},"route":{"cluster":"c"}}`, []matchCase{
			{"equal", get("/api"), true},
			{"longer", get("/apix/y"), true},
			{"query ignored", get("/api?x=1"), true},
			{"case differs", get("/API"), false},
			{"shorter", get("/ap"), false},
			{"prefix in query only", get("/x?/api"), false},
			{"no path", &Request{Method: "GET", Scheme: "http", Authority: "h"}, false},
			{"no scheme", &Request{Method: "GET", Authority: "h", Path: "/api"}, false},
		})
	})
	t.Run("prefix case-insensitive", func(t *testing.T) {
		runMatch(t, `{"name":"r","match":{"prefix":"/Api","case_sensitive":false},"route":{"cluster":"c"}}`, []matchCase{
			{"upper", get("/API/x"), true},
			{"lower", get("/api"), true},
			{"other", get("/apb"), false},
		})
	})
	t.Run("path", func(t *testing.T) {
		runMatch(t, `{"name":"r","match":{"path":"/exact"},"route":{"cluster":"c"}}`, []matchCase{
			{"equal", get("/exact"), true},
			{"with query", get("/exact?a=b"), true},
			{"with fragment", get("/exact#f"), true},
			{"longer", get("/exact/"), false},
			{"case", get("/EXACT"), false},
		})
	})
	t.Run("safe_regex is a full match", func(t *testing.T) {
		runMatch(t, `{"name":"r","match":{"safe_regex":{"regex":"/users/[0-9]+"},"case_sensitive":false},"route":{"cluster":"c"}}`, []matchCase{
			{"full", get("/users/42"), true},
			{"query removed", get("/users/42?x=y"), true},
			{"partial", get("/users/42/books"), false},
			{"case_sensitive does not apply", get("/USERS/42"), false},
		})
	})
	t.Run("path_separated_prefix", func(t *testing.T) {
		runMatch(t, `{"name":"r","match":{"path_separated_prefix":"/api"},"route":{"cluster":"c"}}`, []matchCase{
			{"equal", get("/api"), true},
			{"segment", get("/api/v1"), true},
			{"query", get("/api?x"), true},
			{"not a segment", get("/apiv1"), false},
		})
	})
	t.Run("connect_matcher", func(t *testing.T) {
		runMatch(t, `{"name":"r","match":{"connect_matcher":{}},"route":{"cluster":"c"}}`, []matchCase{
			{"connect without path", &Request{Method: "CONNECT", Scheme: "http", Authority: "h:443"}, true},
			{"get", get("/"), false},
		})
	})
}

func TestHeaderMatch(t *testing.T) {
	route := func(h string) string {
		return `{"name":"r","match":{"prefix":"/","headers":[` + h + `]},"route":{"cluster":"c"}}`
	}
	g := func(h ...string) *Request { return req("GET", "h", "/", h...) }
	cases := []struct {
		name, matcher string
		cases         []matchCase
	}{
		{"exact", `{"name":"X-User","string_match":{"exact":"jason"}}`, []matchCase{
			{"equal", g("x-user", "jason"), true},
			{"other", g("x-user", "json"), false},
			{"absent", g(), false},
			{"multi-valued joined with comma", g("x-user", "jason", "x-user", "bob"), false},
		}},
		{"exact on joined values", `{"name":"x-role","string_match":{"exact":"user,admin"}}`, []matchCase{
			{"two headers", g("x-role", "user", "x-role", "admin"), true},
			{"one header", g("x-role", "user,admin"), true},
		}},
		{"ignore_case", `{"name":"x","string_match":{"exact":"AbC","ignore_case":true}}`, []matchCase{
			{"lower", g("x", "abc"), true},
			{"upper", g("x", "ABC"), true},
		}},
		{"prefix suffix contains", `{"name":"x","string_match":{"prefix":"ab"}},{"name":"x","string_match":{"suffix":"yz"}},{"name":"x","string_match":{"contains":"mm"}}`, []matchCase{
			{"all hold", g("x", "ab-mm-yz"), true},
			{"contains fails", g("x", "ab-m-yz"), false},
		}},
		{"regex", `{"name":"x","string_match":{"safe_regex":{"regex":"v[0-9]"}}}`, []matchCase{
			{"full", g("x", "v1"), true},
			{"partial", g("x", "v12"), false},
		}},
		{"legacy matchers", `{"name":"x","prefix_match":"a"},{"name":"y","suffix_match":"b"},{"name":"z","contains_match":"c"},{"name":"w","safe_regex_match":{"regex":"d+"}}`, []matchCase{
			{"all", g("x", "ax", "y", "yb", "z", "zcz", "w", "dd"), true},
			{"regex fails", g("x", "ax", "y", "yb", "z", "zcz", "w", "de"), false},
		}},
		{"legacy exact empty matches any value", `{"name":"x","exact_match":""}`, []matchCase{
			{"any value", g("x", "whatever"), true},
			{"absent", g(), false},
		}},
		{"present", `{"name":"x","present_match":true}`, []matchCase{
			{"present", g("x", ""), true},
			{"absent", g(), false},
		}},
		{"present false", `{"name":"x","present_match":false}`, []matchCase{
			{"present", g("x", "1"), false},
			{"absent", g(), true},
		}},
		{"present inverted", `{"name":"x","present_match":true,"invert_match":true}`, []matchCase{
			{"present", g("x", "1"), false},
			{"absent", g(), true},
		}},
		{"no specifier is presence", `{"name":"x"}`, []matchCase{
			{"present", g("x", "1"), true},
			{"absent", g(), false},
		}},
		{"inverted exact", `{"name":"x","string_match":{"exact":"a"},"invert_match":true}`, []matchCase{
			{"other value", g("x", "b"), true},
			{"same value", g("x", "a"), false},
			{"absent does not match even inverted", g(), false},
		}},
		{"treat missing as empty", `{"name":"x","string_match":{"exact":"a"},"invert_match":true,"treat_missing_header_as_empty":true}`, []matchCase{
			{"absent is empty, inverted", g(), true},
			{"same value", g("x", "a"), false},
		}},
		{"range", `{"name":"x","range_match":{"start":-10,"end":10}}`, []matchCase{
			{"inside", g("x", "-10"), true},
			{"end excluded", g("x", "10"), false},
			{"not a number", g("x", "1.5"), false},
		}},
		{"pseudo-headers", `{"name":":method","string_match":{"exact":"POST"}},{"name":":authority","string_match":{"prefix":"api."}},{"name":":scheme","string_match":{"exact":"http"}},{"name":":path","string_match":{"prefix":"/"}}`, []matchCase{
			{"all", req("POST", "api.x", "/"), true},
			{"method", req("GET", "api.x", "/"), false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { runMatch(t, route(tc.matcher), tc.cases) })
	}
}

func TestQueryMatch(t *testing.T) {
	route := `{"name":"r","match":{"prefix":"/","query_parameters":[
	 {"name":"user","string_match":{"exact":"jason"}},{"name":"debug","present_match":true}]},"route":{"cluster":"c"}}`
	g := func(p string) *Request { return req("GET", "h", p) }
	runMatch(t, route, []matchCase{
		{"both", g("/?user=jason&debug"), true},
		{"debug with value", g("/p?debug=0&user=jason"), true},
		{"first value counts", g("/?user=bob&user=jason&debug"), false},
		{"not decoded", g("/?user=%6Aason&debug"), false},
		{"missing present", g("/?user=jason"), false},
		{"no query", g("/"), false},
	})
}

func TestCookieMatch(t *testing.T) {
	route := `{"name":"r","match":{"prefix":"/","cookies":[{"name":"session","string_match":{"prefix":"abc"}},{"name":"test","string_match":{"exact":"1"},"invert_match":true}]},"route":{"cluster":"c"}}`
	g := func(c ...string) *Request {
		var h []string
		for _, v := range c {
			h = append(h, "cookie", v)
		}
		return req("GET", "h", "/", h...)
	}
	runMatch(t, route, []matchCase{
		{"session, no test", g("a=1; session=abcdef"), true},
		{"quoted", g(`session="abc"`), true},
		{"second header", g("x=1", "session=abcx"), true},
		{"test cookie set", g("session=abc; test=1"), false},
		{"no session", g("test=2"), false},
	})
}

func TestRuntimeFractionAndGRPC(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`
	 {"name":"canary","match":{"prefix":"/","runtime_fraction":{"default_value":{"numerator":25,"denominator":"HUNDRED"},"runtime_key":"k"}},"route":{"cluster":"canary"}},
	 {"name":"grpc","match":{"prefix":"/","grpc":{}},"route":{"cluster":"grpc"}},
	 {"name":"rest","match":{"prefix":"/"},"route":{"cluster":"rest"}}`))
	hits := 0
	for i := uint64(0); i < 1000; i++ {
		r := req("GET", "h", "/")
		r.Random = i
		if tbl.Match(r).Name == "canary" {
			hits++
		}
	}
	if hits != 250 {
		t.Errorf("runtime_fraction 25/100 over random 0..999: %d hits, want 250", hits)
	}
	for _, tc := range []struct{ ct, want string }{
		{"application/grpc", "grpc"}, {"application/grpc+proto", "grpc"}, {"application/grpc;x", "grpc"},
		{"application/grpc-web", "rest"}, {"text/plain", "rest"},
	} {
		r := req("POST", "h", "/svc/M", "content-type", tc.ct)
		r.Random = 99
		if got := tbl.Match(r).Name; got != tc.want {
			t.Errorf("content-type %q: got %q, want %q", tc.ct, got, tc.want)
		}
	}
}

func TestTLSContextAndMetadataMatch(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`
	 {"name":"meta","match":{"prefix":"/","dynamic_metadata":[{"filter":"envoy.filters.http.jwt_authn","path":[{"key":"claims"}],"value":{"string_match":{"exact":"x"}}}]},"route":{"cluster":"m"}},
	 {"name":"mtls","match":{"prefix":"/","tls_context":{"presented":true,"validated":true}},"route":{"cluster":"t"}},
	 {"name":"rest","match":{"prefix":"/"},"route":{"cluster":"r"}}`))
	r := req("GET", "h", "/")
	if got := tbl.Match(r).Name; got != "rest" {
		t.Errorf("plaintext: got %q, want rest (metadata route never matches)", got)
	}
	r.PeerCertPresented, r.PeerCertValidated = true, true
	if got := tbl.Match(r).Name; got != "mtls" {
		t.Errorf("mTLS: got %q, want mtls", got)
	}
}

func TestFirstMatchWins(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`
	 {"name":"jason","match":{"prefix":"/","headers":[{"name":"end-user","string_match":{"exact":"jason"}}]},"route":{"cluster":"v2"}},
	 {"name":"a","match":{"prefix":"/a"},"route":{"cluster":"a"}},
	 {"name":"ab","match":{"prefix":"/ab"},"route":{"cluster":"ab"}}`))
	for _, tc := range []struct {
		r    *Request
		want string
	}{
		{req("GET", "h", "/ab", "end-user", "jason"), "jason"},
		{req("GET", "h", "/ab"), "a"},
		{req("GET", "h", "/b"), "<none>"},
	} {
		if got := routeName(tbl.Match(tc.r)); got != tc.want {
			t.Errorf("%s %v: got %q, want %q", tc.r.Path, tc.r.Headers, got, tc.want)
		}
	}
}

func TestMatchCompileErrors(t *testing.T) {
	cases := []struct {
		name, js string
		want     []string
		vh, rt   int
	}{
		{"bad path regex", `{"name":"rc","virtual_hosts":[{"name":"a","domains":["a"]},{"name":"b","domains":["b"],"routes":[
		  {"name":"ok","match":{"prefix":"/"},"route":{"cluster":"c"}},
		  {"name":"bad","match":{"safe_regex":{"regex":"(unclosed"}},"route":{"cluster":"c"}}]}]}`,
			[]string{`virtual host 1 ("b")`, `route 1 ("bad")`, "match.safe_regex", "invalid regex"}, 1, 1},
		{"bad header regex", oneVhost(`{"name":"h","match":{"prefix":"/","headers":[{"name":"x","string_match":{"safe_regex":{"regex":"a{2,1}"}}}]},"route":{"cluster":"c"}}`),
			[]string{`route 0 ("h")`, `match.headers[0]: header "x"`}, 0, 0},
		{"RE2-only syntax", oneVhost(`{"name":"h","match":{"safe_regex":{"regex":"\\C"}},"route":{"cluster":"c"}}`),
			[]string{"invalid regex"}, 0, 0},
		{"bad query regex", oneVhost(`{"name":"q","match":{"prefix":"/","query_parameters":[{"name":"a","string_match":{"safe_regex":{"regex":"["}}}]},"route":{"cluster":"c"}}`),
			[]string{`match.query_parameters[0] "a"`}, 0, 0},
		{"path_separated_prefix ending in slash", oneVhost(`{"name":"p","match":{"path_separated_prefix":"/api/"},"route":{"cluster":"c"}}`),
			[]string{"PathSeparatedPrefix"}, 0, 0},
		{"custom matcher", oneVhost(`{"name":"c","match":{"prefix":"/","headers":[{"name":"x","string_match":{"custom":{"name":"ext","typed_config":{"@type":"type.googleapis.com/google.protobuf.Empty"}}}}]},"route":{"cluster":"c"}}`),
			[]string{"custom string matcher"}, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ce := compileErr(t, tc.js, tc.want...)
			if ce.VirtualHost != tc.vh || ce.Route != tc.rt {
				t.Errorf("location vhost %d route %d, want %d %d", ce.VirtualHost, ce.Route, tc.vh, tc.rt)
			}
			if !strings.HasPrefix(ce.Error(), `route configuration "rc"`) {
				t.Errorf("error %q does not name the configuration", ce)
			}
		})
	}
}

func TestRegexAnchoringCannotBeEscaped(t *testing.T) {
	compileErr(t, oneVhost(`{"name":"x","match":{"safe_regex":{"regex":"/a)|(.*"}},"route":{"cluster":"c"}}`), "invalid regex")
}
