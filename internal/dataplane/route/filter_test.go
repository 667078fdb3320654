package route

import (
	"testing"
	"time"
)

const faultAny = `"envoy.filters.http.fault":{"@type":"type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"`

func TestFaultDecodeAndResolution(t *testing.T) {
	tbl := compileJSON(t, `{"name":"rc","virtual_hosts":[{"name":"v","domains":["*"],
	 "typed_per_filter_config":{`+faultAny+`,"abort":{"http_status":500,"percentage":{"numerator":100}}}},
	 "routes":[
	  {"name":"delay","match":{"prefix":"/delay"},"route":{"cluster":"c"},"typed_per_filter_config":{`+faultAny+`,
	    "delay":{"fixed_delay":"5s","percentage":{"numerator":1000,"denominator":"MILLION"}},
	    "headers":[{"name":"x-fault","present_match":true}],"max_active_faults":3}}},
	  {"name":"grpc","match":{"prefix":"/grpc"},"route":{"cluster":"c"},"typed_per_filter_config":{`+faultAny+`,
	    "abort":{"grpc_status":14,"percentage":{"numerator":50,"denominator":"HUNDRED"}},"delay":{"header_delay":{}}}}},
	  {"name":"wrapped","match":{"prefix":"/wrapped"},"route":{"weighted_clusters":{"clusters":[
	    {"name":"a","weight":1,"typed_per_filter_config":{`+faultAny+`,"abort":{"http_status":418,"percentage":{"numerator":100}}}}}]}},
	   "typed_per_filter_config":{"envoy.filters.http.fault":{"@type":"type.googleapis.com/envoy.config.route.v3.FilterConfig","disabled":true}}},
	  {"name":"inherit","match":{"prefix":"/"},"route":{"cluster":"c"}}]}]}`)

	r := req("GET", "h", "/delay", "x-fault", "1")
	rt := tbl.Match(r)
	f := rt.Fault(nil)
	if f == nil || f.Delay == nil || f.Delay.Fixed != 5*time.Second || f.Delay.Percentage != (Fraction{1000, 1_000_000}) || !f.MaxActiveFaultsSet || f.MaxActiveFaults != 3 {
		t.Fatalf("route fault %+v", f)
	}
	if !f.Applies(r) || f.Applies(req("GET", "h", "/delay")) {
		t.Error("fault header condition")
	}
	if d, ok := f.DelayFor(999); !ok || d != 5*time.Second {
		t.Error("DelayFor(999) should delay (999 % 1e6 < 1000)")
	}
	if _, ok := f.DelayFor(1000); ok {
		t.Error("DelayFor(1000) should not delay")
	}
	if f.Abort != nil {
		t.Error("route fault replaces the virtual host's entirely (no merge)")
	}

	g := tbl.Match(req("GET", "h", "/grpc")).Fault(nil)
	if g.Abort == nil || !g.Abort.GRPC || g.Abort.GRPCStatus != 14 || g.Abort.HTTPStatus != 200 || !g.HeaderDelay || g.Delay != nil {
		t.Errorf("grpc abort %+v", g)
	}
	if a, ok := g.AbortFor(149); !ok || a.GRPCStatus != 14 {
		t.Error("AbortFor(149): 149 % 100 < 50")
	}

	in := tbl.Match(req("GET", "h", "/x")).Fault(nil)
	if in == nil || in.Abort.HTTPStatus != 500 || in.Abort.Percentage != (Fraction{100, 100}) {
		t.Errorf("virtual host fault not inherited: %+v", in)
	}
	cfg, ok := tbl.Match(req("GET", "h", "/x")).Filter(FaultFilter, nil)
	if !ok || cfg.Config.GetTypeUrl() != faultType {
		t.Errorf("Filter(fault) = %+v, %v", cfg, ok)
	}

	w := tbl.Match(req("GET", "h", "/wrapped"))
	wc := w.Action.(*Forward).Weighted.Clusters[0]
	if !w.FilterDisabled(FaultFilter, nil) {
		t.Error("route FilterConfig disabled not seen")
	}
	if w.FilterDisabled(FaultFilter, wc) || w.Fault(wc).Abort.HTTPStatus != 418 {
		t.Error("weighted cluster config should win over the route's")
	}
}

func TestFaultErrors(t *testing.T) {
	compileErr(t, oneVhost(`{"name":"bad","match":{"prefix":"/"},"route":{"cluster":"c"},"typed_per_filter_config":{`+faultAny+`,"abort":{"http_status":99}}}}`),
		`route 0 ("bad")`, `typed_per_filter_config "envoy.filters.http.fault"`)
}

const corsAny = `"envoy.filters.http.cors":{"@type":"type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"`

func corsTable(t *testing.T) *Table {
	return compileJSON(t, `{"name":"rc","virtual_hosts":[{"name":"v","domains":["*"],
	 "typed_per_filter_config":{`+corsAny+`,"allow_origin_string_match":[{"exact":"https://vhost.example"}],"max_age":"600","allow_credentials":true}},
	 "routes":[
	  {"name":"cors","match":{"prefix":"/cors"},"route":{"cluster":"c"},"typed_per_filter_config":{`+corsAny+`,
	    "allow_origin_string_match":[{"exact":"https://example.com"},{"prefix":"https://app."},{"safe_regex":{"regex":".*\\.example\\.org"}}],
	    "allow_methods":"GET,POST","allow_headers":"x-custom,content-type","expose_headers":"x-exposed",
	    "forward_not_matching_preflights":false,"filter_enabled":{"default_value":{"numerator":100}}}}},
	  {"name":"star","match":{"prefix":"/star"},"route":{"cluster":"c"},"typed_per_filter_config":{`+corsAny+`,
	    "allow_origin_string_match":[{"exact":"*"}],"allow_methods":"*","allow_headers":"*","allow_credentials":false}}},
	  {"name":"off","match":{"prefix":"/off"},"route":{"cluster":"c"},"typed_per_filter_config":{`+corsAny+`,
	    "filter_enabled":{"default_value":{"numerator":0}}}}},
	  {"name":"inherit","match":{"prefix":"/"},"route":{"cluster":"c"}}]}]}`)
}

func TestCORSPreflight(t *testing.T) {
	tbl := corsTable(t)
	pre := func(path, origin string, extra ...string) *Request {
		h := append([]string{"origin", origin, "access-control-request-method", "PUT"}, extra...)
		return req("OPTIONS", "h", path, h...)
	}
	cases := []struct {
		name    string
		r       *Request
		respond bool
		want    map[string]string
	}{
		{"allowed exact", pre("/cors", "https://example.com"), true, map[string]string{
			"access-control-allow-origin": "https://example.com", "access-control-allow-methods": "GET,POST",
			"access-control-allow-headers": "x-custom,content-type", "access-control-max-age": "600",
			"access-control-allow-credentials": "true"}},
		{"allowed regex", pre("/cors", "https://a.example.org"), true, map[string]string{"access-control-allow-origin": "https://a.example.org"}},
		{"not allowed, not forwarded", pre("/cors", "https://evil.com"), true, map[string]string{"access-control-allow-origin": ""}},
		{"not allowed, forwarded by default", pre("/inherit", "https://evil.com"), false, nil},
		{"vhost policy inherited", pre("/inherit", "https://vhost.example"), true, map[string]string{
			"access-control-allow-origin": "https://vhost.example", "access-control-max-age": "600"}},
		{"star echoes request", pre("/star", "https://any.site", "access-control-request-headers", "x-a,x-b"), true, map[string]string{
			"access-control-allow-methods": "PUT", "access-control-allow-headers": "x-a,x-b",
			"access-control-allow-credentials": "", "access-control-max-age": "600"}},
		{"filter disabled", pre("/off", "https://vhost.example"), false, nil},
		{"no origin", req("OPTIONS", "h", "/cors", "access-control-request-method", "PUT"), false, nil},
		{"not a preflight", req("GET", "h", "/cors", "origin", "https://example.com"), false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tbl.Match(tc.r).CORS(nil)
			if c == nil {
				t.Fatal("no CORS policy")
			}
			d := c.Preflight(tc.r)
			if d.Respond != tc.respond {
				t.Fatalf("Respond = %v, want %v", d.Respond, tc.respond)
			}
			for k, v := range tc.want {
				if got := d.Headers.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestCORSApply(t *testing.T) {
	tbl := corsTable(t)
	r := req("GET", "h", "/cors", "origin", "https://app.example.net")
	resp := HeaderMap{}
	tbl.Match(r).CORS(nil).Apply(r, resp)
	if resp.Get("access-control-allow-origin") != "https://app.example.net" || resp.Get("access-control-expose-headers") != "x-exposed" ||
		resp.Get("access-control-allow-credentials") != "true" {
		t.Errorf("simple request response headers %v", resp)
	}
	r = req("GET", "h", "/cors", "origin", "https://evil.com")
	resp = HeaderMap{}
	tbl.Match(r).CORS(nil).Apply(r, resp)
	if len(resp) != 0 {
		t.Errorf("disallowed origin got headers %v", resp)
	}
}

func TestLegacyCORS(t *testing.T) {
	tbl := compileJSON(t, oneVhost(`{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c","cors":{"allow_origin_string_match":[{"exact":"https://old"}],"allow_methods":"GET"}}}`))
	r := req("OPTIONS", "h", "/", "origin", "https://old", "access-control-request-method", "GET")
	d := tbl.Match(r).CORS(nil).Preflight(r)
	if !d.Respond || d.Headers.Get("access-control-allow-methods") != "GET" {
		t.Errorf("legacy route cors: %+v", d)
	}
}

func TestFilterDisabledHidesInheritedConfig(t *testing.T) {
	tbl := compileJSON(t, `{"name":"rc","virtual_hosts":[{"name":"v","domains":["*"],
	 "typed_per_filter_config":{`+faultAny+`,"abort":{"http_status":500,"percentage":{"numerator":100}}},`+corsAny+`,"allow_origin_string_match":[{"exact":"*"}]}},
	 "routes":[{"name":"off","match":{"prefix":"/"},"route":{"cluster":"c"},"typed_per_filter_config":{
	   "envoy.filters.http.fault":{"@type":"type.googleapis.com/envoy.config.route.v3.FilterConfig","disabled":true},
	   "envoy.filters.http.cors":{"@type":"type.googleapis.com/envoy.config.route.v3.FilterConfig","disabled":true}}}]}]}`)
	rt := tbl.Match(req("GET", "h", "/"))
	if rt.Fault(nil) != nil || rt.CORS(nil) != nil {
		t.Errorf("disabled filters still configured: fault %v, cors %v", rt.Fault(nil), rt.CORS(nil))
	}
}
