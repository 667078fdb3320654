package route

import "testing"

const domainsRC = `{"name":"rc","virtual_hosts":[
 {"name":"exact","domains":["foo.example.com","FOO.bar.com","[::1]","10.0.0.1"],"routes":[{"name":"exact","match":{"prefix":"/"},"route":{"cluster":"c"}}]},
 {"name":"suffix-long","domains":["*-bar.example.com"],"routes":[{"name":"suffix-long","match":{"prefix":"/"},"route":{"cluster":"c"}}]},
 {"name":"suffix","domains":["*.example.com"],"routes":[{"name":"suffix","match":{"prefix":"/"},"route":{"cluster":"c"}}]},
 {"name":"prefix","domains":["foo.*"],"routes":[{"name":"prefix","match":{"prefix":"/"},"route":{"cluster":"c"}}]},
 {"name":"prefix-long","domains":["foo.example.*"],"routes":[{"name":"prefix-long","match":{"prefix":"/"},"route":{"cluster":"c"}}]},
 {"name":"default","domains":["*"],"routes":[{"name":"default","match":{"prefix":"/"},"route":{"cluster":"c"}}]}
]}`

func TestVirtualHostPrecedence(t *testing.T) {
	plain := compileJSON(t, domainsRC)
	rc := parseRC(t, domainsRC)
	rc.IgnorePortInHostMatching = true
	noPort, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, host       string
		want, wantNoPort string
	}{
		{"exact", "foo.example.com", "exact", "exact"},
		{"exact is case-insensitive", "FOO.Example.COM", "exact", "exact"},
		{"configured upper case", "foo.bar.com", "exact", "exact"},
		{"longest suffix wins", "x-bar.example.com", "suffix-long", "suffix-long"},
		{"suffix", "a.example.com", "suffix", "suffix"},
		{"suffix beats prefix", "foo.a.example.com", "suffix", "suffix"},
		{"wildcard needs one character", ".example.com", "default", "default"},
		{"longest prefix wins", "foo.example.org", "prefix-long", "prefix-long"},
		{"prefix", "foo.org", "prefix", "prefix"},
		{"prefix needs one character", "foo.", "default", "default"},
		{"default", "other.org", "default", "default"},
		{"port kept: falls to prefix", "foo.example.com:8080", "prefix-long", "exact"},
		{"port kept: suffix misses", "a.example.com:80", "default", "suffix"},
		{"empty port", "foo.example.com:", "prefix-long", "exact"},
		{"ipv6 literal", "[::1]", "exact", "exact"},
		{"ipv6 with port", "[::1]:9080", "default", "exact"},
		{"ipv4 with port", "10.0.0.1:80", "default", "exact"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &Request{Authority: tc.host, Path: "/", Method: "GET"}
			if got := plain.VirtualHost(r).Name; got != tc.want {
				t.Errorf("VirtualHost(%q) = %q, want %q", tc.host, got, tc.want)
			}
			if got := noPort.VirtualHost(r).Name; got != tc.wantNoPort {
				t.Errorf("with ignore_port_in_host_matching: VirtualHost(%q) = %q, want %q", tc.host, got, tc.wantNoPort)
			}
		})
	}
}

func TestVirtualHostLongHost(t *testing.T) {
	tbl := compileJSON(t, domainsRC)
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'A'
	}
	host := string(long) + ".example.com"
	if got := tbl.VirtualHost(&Request{Authority: host}).Name; got != "suffix" {
		t.Errorf("300-character host: got %q, want suffix", got)
	}
}

func TestVirtualHostWithoutAuthority(t *testing.T) {
	tbl := compileJSON(t, domainsRC)
	if vh := tbl.VirtualHost(&Request{Path: "/"}); vh != nil {
		t.Errorf("no authority with named hosts: got %q, want none", vh.Name)
	}
	only := compileJSON(t, oneVhost(`{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c"}}`))
	if vh := only.VirtualHost(&Request{Path: "/"}); vh == nil || vh.Name != "vh" {
		t.Errorf("no authority with only \"*\": got %v, want vh", vh)
	}
	none := compileJSON(t, `{"name":"rc","virtual_hosts":[{"name":"a","domains":["a"],"routes":[]}]}`)
	if r := none.Match(req("GET", "b", "/")); r != nil {
		t.Errorf("no matching host and no default: got route %q", r.Name)
	}
}

func TestVirtualHostHeader(t *testing.T) {
	tbl := compileJSON(t, `{"name":"rc","vhost_header":"X-Host","virtual_hosts":[
	 {"name":"a","domains":["a.com"],"routes":[{"name":"a","match":{"prefix":"/"},"route":{"cluster":"a"}}]},
	 {"name":"d","domains":["*"],"routes":[{"name":"d","match":{"prefix":"/"},"route":{"cluster":"d"}}]}]}`)
	if got := routeName(tbl.Match(req("GET", "b.com", "/", "x-host", "A.com"))); got != "a" {
		t.Errorf("vhost_header: got %q, want a", got)
	}
	if got := routeName(tbl.Match(req("GET", "a.com", "/"))); got != "<none>" {
		t.Errorf("vhost_header absent: got %q, want none", got)
	}
}

func TestDomainErrors(t *testing.T) {
	ce := compileErr(t, `{"name":"rc","virtual_hosts":[
	 {"name":"a","domains":["a.com"]},{"name":"b","domains":["x.com","A.COM"]}]}`, "duplicate entry of domain a.com")
	if ce.VirtualHost != 1 || ce.VirtualHostName != "b" || ce.Route != -1 {
		t.Errorf("error location = vhost %d %q route %d; want vhost 1 \"b\" route -1", ce.VirtualHost, ce.VirtualHostName, ce.Route)
	}
	compileErr(t, `{"name":"rc","virtual_hosts":[{"name":"a","domains":["*"]},{"name":"b","domains":["*"]}]}`, "single wildcard")
	compileErr(t, `{"name":"rc","virtual_hosts":[{"name":"a","domains":["*.a"]},{"name":"b","domains":["*.A"]}]}`, "duplicate")
}

func TestRequireTLS(t *testing.T) {
	tbl := compileJSON(t, `{"name":"rc","virtual_hosts":[
	 {"name":"all","domains":["all.com"],"require_tls":"ALL","routes":[{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c"}}]},
	 {"name":"ext","domains":["ext.com"],"require_tls":"EXTERNAL_ONLY","routes":[{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c"}}]}]}`)
	cases := []struct {
		name string
		r    *Request
		want string
		loc  string
	}{
		{"all plaintext", req("GET", "all.com", "/x?y"), "ssl_redirect", "https://all.com/x?y"},
		{"all https by xfp", req("GET", "all.com", "/", "x-forwarded-proto", "https"), "r", ""},
		{"ext internal", req("GET", "ext.com", "/", "x-envoy-internal", "true"), "r", ""},
		{"ext external", req("GET", "ext.com", "/"), "ssl_redirect", "https://ext.com/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tbl.Match(tc.r)
			if routeName(r) != tc.want {
				t.Fatalf("got %q, want %q", routeName(r), tc.want)
			}
			if tc.loc != "" {
				rd := r.Action.(*Redirect)
				if rd.Status != 301 || r.Location(tc.r) != tc.loc {
					t.Errorf("redirect %d %q, want 301 %q", rd.Status, r.Location(tc.r), tc.loc)
				}
			}
		})
	}
}
