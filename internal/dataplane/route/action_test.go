package route

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestWeightedPick(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`{"name":"w","match":{"prefix":"/"},"route":{"weighted_clusters":{"clusters":[
	 {"name":"v1","weight":80},{"name":"zero","weight":0},{"name":"v2","weight":20}]}}}`))
	f := tbl.Match(req("GET", "h", "/")).Action.(*Forward)
	w := f.Weighted
	if w.Total != 100 {
		t.Fatalf("total %d, want 100", w.Total)
	}
	exact := map[string]int{}
	for r := uint64(0); r < 10_000; r++ {
		exact[w.Pick(r).Name]++
	}
	if exact["v1"] != 8000 || exact["v2"] != 2000 || exact["zero"] != 0 {
		t.Errorf("Pick over r = 0..9999: %v, want v1 8000, v2 2000", exact)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	got := map[string]int{}
	for range 10_000 {
		r := req("GET", "h", "/")
		r.Random = rng.Uint64()
		name, _, ok := f.ClusterFor(r)
		if !ok {
			t.Fatal("ClusterFor: no cluster")
		}
		got[name]++
	}
	if v1 := got["v1"]; v1 < 7800 || v1 > 8200 {
		t.Errorf("10,000 random draws: v1 %d, want 8000 ± 200 (%v)", v1, got)
	}
}

func TestWeightedRandomSources(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`
	 {"name":"hdr","match":{"prefix":"/hdr"},"route":{"weighted_clusters":{"header_name":"x-rand","clusters":[{"name":"a","weight":1},{"name":"b","weight":1}]}}},
	 {"name":"hash","match":{"prefix":"/hash"},"route":{"hash_policy":[{"header":{"header_name":"x-user"}}],"weighted_clusters":{"use_hash_policy":true,"clusters":[{"name":"a","weight":1},{"name":"b","weight":1}]}}}`))
	r := req("GET", "h", "/hdr", "x-rand", "3")
	r.Random = 0
	if name, _, _ := tbl.Match(r).Action.(*Forward).ClusterFor(r); name != "b" {
		t.Errorf("header_name 3 %% 2: got %q, want b", name)
	}
	// The same user always lands on the same cluster whatever Random is.
	first := ""
	for i := range uint64(20) {
		r := req("GET", "h", "/hash", "x-user", "jason")
		r.Random = i
		name, _, _ := tbl.Match(r).Action.(*Forward).ClusterFor(r)
		if first == "" {
			first = name
		} else if name != first {
			t.Fatalf("use_hash_policy: draw %d picked %q, earlier %q", i, name, first)
		}
	}
}

func TestClusterHeader(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`{"name":"c","match":{"prefix":"/"},"route":{"cluster_header":"X-Cluster","cluster_not_found_response_code":"NOT_FOUND"}}`))
	f := tbl.Match(req("GET", "h", "/")).Action.(*Forward)
	if name, _, ok := f.ClusterFor(req("GET", "h", "/", "x-cluster", "backend")); !ok || name != "backend" {
		t.Errorf("cluster_header: %q %v", name, ok)
	}
	if _, _, ok := f.ClusterFor(req("GET", "h", "/")); ok || f.ClusterNotFoundStatus != 404 {
		t.Errorf("missing cluster header: ok %v, status %d; want false, 404", ok, f.ClusterNotFoundStatus)
	}
}

func TestRedirectLocation(t *testing.T) {
	cases := []struct {
		name, route string
		r           *Request
		status      int
		want        string
	}{
		{"host and path", `{"name":"r","match":{"path":"/old"},"redirect":{"host_redirect":"new.example.com","path_redirect":"/new"}}`,
			req("GET", "old.com", "/old?x=1"), 301, "http://new.example.com/new?x=1"},
		{"https drops :80", `{"name":"r","match":{"prefix":"/"},"redirect":{"https_redirect":true,"response_code":"PERMANENT_REDIRECT"}}`,
			req("GET", "foo.com:80", "/p"), 308, "https://foo.com/p"},
		{"https keeps other ports", `{"name":"r","match":{"prefix":"/"},"redirect":{"https_redirect":true}}`,
			req("GET", "foo.com:8080", "/p"), 301, "https://foo.com:8080/p"},
		{"same scheme keeps :443", `{"name":"r","match":{"prefix":"/"},"redirect":{"scheme_redirect":"https","path_redirect":"/x"}}`,
			req("GET", "foo.com:443", "/p", "x-forwarded-proto", "https"), 301, "https://foo.com:443/x"},
		{"scheme and port", `{"name":"r","match":{"prefix":"/"},"redirect":{"scheme_redirect":"https","port_redirect":8443,"response_code":"FOUND","path_redirect":""}}`,
			req("GET", "foo.com:9080", "/p?q"), 302, "https://foo.com:8443/p?q"},
		{"ipv6 host", `{"name":"r","match":{"prefix":"/"},"redirect":{"https_redirect":true}}`,
			req("GET", "[::1]:80", "/"), 301, "https://[::1]/"},
		{"strip query", `{"name":"r","match":{"prefix":"/"},"redirect":{"strip_query":true,"response_code":"SEE_OTHER"}}`,
			req("GET", "h", "/p?x=1"), 303, "http://h/p"},
		{"path_redirect query wins over strip", `{"name":"r","match":{"prefix":"/"},"redirect":{"path_redirect":"/n?a=b","strip_query":true,"response_code":"TEMPORARY_REDIRECT"}}`,
			req("GET", "h", "/p?x=1"), 307, "http://h/n?a=b"},
		{"prefix rewrite", `{"name":"r","match":{"prefix":"/v1"},"redirect":{"prefix_rewrite":"/v2"}}`,
			req("GET", "h", "/v1/users?q"), 301, "http://h/v2/users?q"},
		{"regex rewrite", `{"name":"r","match":{"prefix":"/a/"},"redirect":{"regex_rewrite":{"pattern":{"regex":"^/a/(.*)$"},"substitution":"/b/\\1"}}}`,
			req("GET", "h", "/a/x?q"), 301, "http://h/b/x?q"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := compileJSON(t, oneVhost(tc.route)).Match(tc.r)
			rd, ok := r.Action.(*Redirect)
			if !ok {
				t.Fatalf("action %T, want *Redirect", r.Action)
			}
			if rd.Status != tc.status {
				t.Errorf("status %d, want %d", rd.Status, tc.status)
			}
			if got := r.Location(tc.r); got != tc.want {
				t.Errorf("Location = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUpstreamRewrites(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`
	 {"name":"slash","match":{"prefix":"/prefix/"},"route":{"cluster":"c","prefix_rewrite":"/"}},
	 {"name":"v1","match":{"prefix":"/V1","case_sensitive":false},"route":{"cluster":"c","prefix_rewrite":"/v2","host_rewrite_literal":"backend.internal"}},
	 {"name":"exact","match":{"path":"/e"},"route":{"cluster":"c","prefix_rewrite":"/x"}},
	 {"name":"regex","match":{"safe_regex":{"regex":"/users/([0-9]+)"}},"route":{"cluster":"c","regex_rewrite":{"pattern":{"regex":"^/users/([0-9]+)$"},"substitution":"/u/\\1"}}},
	 {"name":"hosthdr","match":{"prefix":"/hh"},"route":{"cluster":"c","host_rewrite_header":"x-host"}},
	 {"name":"hostre","match":{"prefix":"/hr/"},"route":{"cluster":"c","host_rewrite_path_regex":{"pattern":{"regex":"^/hr/([^/]+).*$"},"substitution":"\\1.svc"}}},
	 {"name":"plain","match":{"prefix":"/"},"route":{"cluster":"c"}}`))
	cases := []struct {
		path, wantRoute, wantPath, wantHost string
		headers                             []string
	}{
		{"/prefix/foo?x", "slash", "/foo?x", "h", nil},
		{"/v1/a?b=c", "v1", "/v2/a?b=c", "backend.internal", nil},
		{"/e?q", "exact", "/x?q", "h", nil},
		{"/users/42?x=1", "regex", "/u/42?x=1", "h", nil},
		{"/hh", "hosthdr", "/hh", "other.host", []string{"x-host", "other.host"}},
		{"/hh", "hosthdr", "/hh", "h", []string{"x-host", ""}},
		{"/hr/reviews/x?y", "hostre", "/hr/reviews/x?y", "reviews.svc", nil},
		{"/plain", "plain", "/plain", "h", nil},
	}
	for _, tc := range cases {
		r := req("GET", "h", tc.path, tc.headers...)
		rt := tbl.Match(r)
		if rt.Name != tc.wantRoute {
			t.Errorf("%s: route %q, want %q", tc.path, rt.Name, tc.wantRoute)
			continue
		}
		if got, _ := rt.UpstreamPath(r); got != tc.wantPath {
			t.Errorf("%s: upstream path %q, want %q", tc.path, got, tc.wantPath)
		}
		if got, _ := rt.UpstreamAuthority(r, nil); got != tc.wantHost {
			t.Errorf("%s: upstream authority %q, want %q", tc.path, got, tc.wantHost)
		}
	}
}

func TestTimeouts(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`
	 {"name":"unset","match":{"prefix":"/unset"},"route":{"cluster":"c"}},
	 {"name":"zero","match":{"prefix":"/zero"},"route":{"cluster":"c","timeout":"0s","max_grpc_timeout":"0s"}},
	 {"name":"set","match":{"prefix":"/set"},"route":{"cluster":"c","timeout":"2.5s","idle_timeout":"30s",
	   "max_stream_duration":{"max_stream_duration":"60s","grpc_timeout_header_max":"10s","grpc_timeout_header_offset":"0.1s"}}}`))
	fwd := func(p string) *Forward { return tbl.Match(req("GET", "h", p)).Action.(*Forward) }
	if f := fwd("/unset"); f.Timeout != 15*time.Second || f.IdleTimeout.Set || f.GRPCTimeoutHeaderMax.Set {
		t.Errorf("unset: %+v; want 15s timeout, idle and grpc max unset", f)
	}
	if f := fwd("/zero"); f.Timeout != 0 || !f.GRPCTimeoutHeaderMax.Set || f.GRPCTimeoutHeaderMax.D != 0 {
		t.Errorf("zero: timeout %v grpc max %+v; want 0 (disabled) and set 0 (no cap)", f.Timeout, f.GRPCTimeoutHeaderMax)
	}
	f := fwd("/set")
	want := []struct {
		got  OptionalDuration
		want time.Duration
	}{{f.IdleTimeout, 30 * time.Second}, {f.MaxStreamDuration, time.Minute}, {f.GRPCTimeoutHeaderMax, 10 * time.Second}, {f.GRPCTimeoutHeaderOffset, 100 * time.Millisecond}}
	if f.Timeout != 2500*time.Millisecond {
		t.Errorf("timeout %v, want 2.5s", f.Timeout)
	}
	for i, w := range want {
		if !w.got.Set || w.got.D != w.want {
			t.Errorf("duration %d = %+v, want %v", i, w.got, w.want)
		}
	}
}

func TestDirectResponseAndNonForwarding(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`
	 {"name":"dr","match":{"prefix":"/dr"},"direct_response":{"status":418,"body":{"inline_string":"teapot"}}},
	 {"name":"moved","match":{"prefix":"/moved"},"direct_response":{"status":301}},
	 {"name":"nf","match":{"prefix":"/nf"},"non_forwarding_action":{}}`))
	r := req("GET", "h", "/dr")
	d := tbl.Match(r).Action.(*DirectResponse)
	if d.Status != 418 || d.Body != "teapot" || d.Location(r) != "" {
		t.Errorf("direct response %+v", d)
	}
	r = req("GET", "h", "/moved?x")
	if got := tbl.Match(r).Action.(*DirectResponse).Location(r); got != "http://h/moved?x" {
		t.Errorf("3xx direct response Location %q", got)
	}
	if _, ok := tbl.Match(req("GET", "h", "/nf")).Action.(NonForwarding); !ok {
		t.Error("non_forwarding_action not NonForwarding")
	}
}

func TestActionCompileErrors(t *testing.T) {
	big := `{"name":"rc","max_direct_response_body_size_bytes":4,"virtual_hosts":[{"name":"v","domains":["*"],"routes":[
	 {"name":"big","match":{"prefix":"/"},"direct_response":{"status":200,"body":{"inline_string":"12345"}}}]}]}`
	compileErr(t, big, `route 0 ("big")`, "direct_response: response body size is 5 bytes; maximum is 4")
	compileErr(t, oneVhost(`{"name":"w","match":{"prefix":"/"},"route":{"weighted_clusters":{"clusters":[{"name":"a","weight":0}]}}}`),
		"sum of weights must be greater than 0")
	compileErr(t, oneVhost(`{"name":"rr","match":{"prefix":"/"},"route":{"cluster":"c","regex_rewrite":{"pattern":{"regex":"(a)"},"substitution":"\\2"}}}`),
		"regex_rewrite", `group \2`)
	compileErr(t, oneVhost(`{"name":"f","match":{"prefix":"/"},"route":{"cluster":"c","regex_rewrite":{"pattern":{"regex":"a"},"substitution":"b"},"prefix_rewrite":"/x"}}`),
		"only one of prefix_rewrite and regex_rewrite")
	compileErr(t, oneVhost(`{"name":"p","match":{"prefix":"/"},"route":{"cluster_specifier_plugin":"x"}}`), "not supported")
	compileErr(t, `{"name":"rc","vhds":{"config_source":{"ads":{}}}}`, "vhds is not supported")
}

func TestRE2Template(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`/u/\1`, `/u/${1}`}, {`a$b`, `a$$b`}, {`\\x\0`, `\x${0}`},
	} {
		got, err := re2Template(tc.in, 1)
		if err != nil || got != tc.want {
			t.Errorf("re2Template(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`\`, `\q`, `\5`} {
		if _, err := re2Template(bad, 1); err == nil {
			t.Errorf("re2Template(%q) accepted", bad)
		}
	}
}
