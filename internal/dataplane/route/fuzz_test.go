package route

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// fuzzRC exercises every match kind and action.
const fuzzRC = `{"name":"fuzz","ignore_port_in_host_matching":true,"virtual_hosts":[
 {"name":"exact","domains":["a.example.com","[::1]"],"routes":[
  {"name":"hdr","match":{"prefix":"/","headers":[{"name":"x-user","string_match":{"safe_regex":{"regex":"j.*n"}}},{"name":"x-n","range_match":{"start":0,"end":9},"invert_match":true,"treat_missing_header_as_empty":true}]},
   "route":{"weighted_clusters":{"header_name":"x-rand","clusters":[{"name":"a","weight":3},{"name":"b","weight":1}]},"hash_policy":[{"header":{"header_name":"x-user","regex_rewrite":{"pattern":{"regex":"(.)"},"substitution":"\\1\\1"}}},{"cookie":{"name":"s","ttl":"1s"}},{"connection_properties":{"source_ip":true}}]}},
  {"name":"q","match":{"path_separated_prefix":"/q","query_parameters":[{"name":"k","string_match":{"contains":"v","ignore_case":true}}],"cookies":[{"name":"c","string_match":{"suffix":"z"}}]},"redirect":{"regex_rewrite":{"pattern":{"regex":"q(.*)"},"substitution":"r\\1"},"strip_query":true}},
  {"name":"re","match":{"safe_regex":{"regex":"/re/[a-z]+"}},"route":{"cluster":"c","regex_rewrite":{"pattern":{"regex":"/re/"},"substitution":"/"},"host_rewrite_path_regex":{"pattern":{"regex":"^/re/([a-z]+)$"},"substitution":"\\1"}}},
  {"name":"rd","match":{"prefix":"/rd","case_sensitive":false},"redirect":{"https_redirect":true,"port_redirect":8443,"prefix_rewrite":"/x"}},
  {"name":"rt","match":{"prefix":"/","runtime_fraction":{"default_value":{"numerator":5,"denominator":"TEN_THOUSAND"}}},"direct_response":{"status":200}},
  {"name":"rest","match":{"prefix":"/","grpc":{}},"route":{"cluster_header":"x-cluster","prefix_rewrite":"/p"}}]},
 {"name":"suffix","domains":["*.example.com","*-b.example.com"],"require_tls":"EXTERNAL_ONLY","routes":[{"name":"s","match":{"path":"/"},"route":{"cluster":"s"}}]},
 {"name":"prefix","domains":["api.*"],"routes":[{"name":"p","match":{"connect_matcher":{}},"route":{"cluster":"p"}}]},
 {"name":"any","domains":["*"],"routes":[{"name":"d","match":{"prefix":""},"route":{"cluster":"d"}}]}]}`

func FuzzMatch(f *testing.F) {
	tbl := compileJSON(f, fuzzRC)
	f.Add("GET", "a.example.com", "/re/abc?x", "x-user", "jason", uint64(7))
	f.Add("OPTIONS", "A.EXAMPLE.COM:80", "/q/1?k=V", "cookie", "c=zz", uint64(0))
	f.Add("CONNECT", "api.x:443", "", "x-rand", "18446744073709551615", uint64(1))
	f.Add("POST", "[::1]:9", "/rd/a", "content-type", "application/grpc", uint64(3))
	f.Add("GET", "x-b.example.com", "/", "x-envoy-internal", "true", uint64(9))
	f.Fuzz(func(t *testing.T, method, authority, path, hname, hvalue string, random uint64) {
		r := &Request{Method: method, Scheme: "http", Authority: authority, Path: path, Random: random,
			Headers: HeaderMap{hname: {hvalue}, "x-user": {hvalue}, "cookie": {hvalue}}}
		a, b := tbl.Match(r), tbl.Match(r)
		if a != b {
			t.Fatalf("Match is not deterministic: %v then %v", routeName(a), routeName(b))
		}
		if a == nil {
			return
		}
		a.UpstreamPath(r)
		a.Location(r)
		a.CORS(nil).Preflight(r)
		if f, ok := a.Action.(*Forward); ok {
			_, wc, _ := f.ClusterFor(r)
			a.UpstreamAuthority(r, wc)
			h1, ok1 := f.Hash.Hash(r)
			h2, ok2 := f.Hash.Hash(r)
			if h1 != h2 || ok1 != ok2 {
				t.Fatal("Hash is not deterministic")
			}
			a.FinalizeRequestHeaders(HeaderMap{hname: {hvalue}}, wc)
		}
	})
}

func FuzzCompile(f *testing.F) {
	for _, js := range []string{fuzzRC, domainsRC, oneVhost(`{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c"}}`)} {
		b, err := proto.Marshal(parseRC(f, js))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rc := parseBytes(data)
		if rc == nil {
			return
		}
		tbl, err := Compile(rc)
		if err != nil {
			return
		}
		for _, vh := range tbl.VirtualHosts {
			host := ""
			if len(vh.Domains) > 0 {
				host = vh.Domains[0]
			}
			r := &Request{Method: "GET", Scheme: "http", Authority: host, Path: "/a?b=c", Headers: HeaderMap{}}
			if rt := tbl.Match(r); rt != nil {
				rt.UpstreamPath(r)
				rt.Location(r)
				if f, ok := rt.Action.(*Forward); ok {
					_, wc, _ := f.ClusterFor(r)
					rt.UpstreamAuthority(r, wc)
					f.Hash.Hash(r)
				}
			}
		}
	})
}
