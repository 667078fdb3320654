package route

import (
	"slices"
	"testing"
)

func TestHeaderOpsApply(t *testing.T) {
	ops, err := compileHeaderOpsJSON(t, `{"name":"rc","virtual_hosts":[{"name":"v","domains":["*"],"routes":[{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c"},
	 "request_headers_to_remove":["X-Remove","x-readd"],
	 "request_headers_to_add":[
	  {"header":{"key":"x-append","value":"2"}},
	  {"header":{"key":"x-legacy-overwrite","value":"new"},"append":false},
	  {"header":{"key":"x-absent","value":"a"},"append_action":"ADD_IF_ABSENT"},
	  {"header":{"key":"x-present","value":"p"},"append_action":"ADD_IF_ABSENT"},
	  {"header":{"key":"x-ow","value":"ow"},"append_action":"OVERWRITE_IF_EXISTS_OR_ADD"},
	  {"header":{"key":"x-owe","value":"owe"},"append_action":"OVERWRITE_IF_EXISTS"},
	  {"header":{"key":"x-owe-missing","value":"owe"},"append_action":"OVERWRITE_IF_EXISTS"},
	  {"header":{"key":"x-empty","value":""}},
	  {"header":{"key":"x-keep-empty","value":""},"keep_empty_value":true},
	  {"header":{"key":"x-readd","value":"fresh"}},
	  {"header":{"key":"x-pct","value":"100%%"}},
	  {"header":{"key":"x-dyn","value":"%DOWNSTREAM_REMOTE_ADDRESS%"}},
	  {"header":{"key":"x-twice","value":"1"},"append_action":"ADD_IF_ABSENT"},
	  {"header":{"key":"x-twice","value":"2"},"append_action":"ADD_IF_ABSENT"}]}]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	h := HeaderMap{
		"x-remove": {"gone"}, "x-readd": {"old"}, "x-append": {"1"}, "x-legacy-overwrite": {"old"},
		"x-present": {"here"}, "x-ow": {"1", "2"}, "x-owe": {"old"},
	}
	ops.FinalizeRequestHeaders(h, nil)
	want := HeaderMap{
		"x-readd": {"fresh"}, "x-append": {"1", "2"}, "x-legacy-overwrite": {"new"}, "x-absent": {"a"},
		"x-present": {"here"}, "x-ow": {"ow"}, "x-owe": {"owe"}, "x-keep-empty": {""}, "x-pct": {"100%"},
		"x-dyn": {"%DOWNSTREAM_REMOTE_ADDRESS%"},
		// Decided before this level's additions, as Envoy: both are added.
		"x-twice": {"1", "2"},
	}
	if len(h) != len(want) {
		t.Errorf("headers %v, want %v", h, want)
	}
	for k, v := range want {
		if !slices.Equal(h[k], v) {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
}

func compileHeaderOpsJSON(t *testing.T, js string) (*Route, error) {
	t.Helper()
	tbl, err := Compile(parseRC(t, js))
	if err != nil {
		return nil, err
	}
	return tbl.VirtualHosts[0].Routes[0], nil
}

func TestHeaderOpsOrder(t *testing.T) {
	const levels = `"request_headers_to_add":[{"header":{"key":"x-level","value":"%s"},"append_action":"OVERWRITE_IF_EXISTS_OR_ADD"},{"header":{"key":"x-trail","value":"%s"}}],
	 "response_headers_to_add":[{"header":{"key":"x-level","value":"%s"},"append_action":"OVERWRITE_IF_EXISTS_OR_ADD"}]`
	lv := func(n string) string { return sprintf(levels, n, n, n) }
	js := func(mostSpecific bool) string {
		ms := "false"
		if mostSpecific {
			ms = "true"
		}
		return `{"name":"rc","most_specific_header_mutations_wins":` + ms + `,` + lv("config") + `,"virtual_hosts":[{"name":"v","domains":["*"],` + lv("vhost") + `,"routes":[
		 {"name":"r","match":{"prefix":"/"},` + lv("route") + `,"route":{"weighted_clusters":{"clusters":[{"name":"a","weight":1,` + lv("cluster") + `}]}}}]}]}`
	}
	for _, tc := range []struct {
		mostSpecific bool
		level        string
		trail        []string
	}{
		{false, "config", []string{"cluster", "route", "vhost", "config"}},
		{true, "route", []string{"cluster", "config", "vhost", "route"}},
	} {
		tbl := compileJSON(t, js(tc.mostSpecific))
		r := tbl.Match(req("GET", "h", "/"))
		wc := r.Action.(*Forward).Weighted.Clusters[0]
		h, resp := HeaderMap{}, HeaderMap{}
		r.FinalizeRequestHeaders(h, wc)
		r.FinalizeResponseHeaders(resp, wc)
		if h.Get("x-level") != tc.level || !slices.Equal(h["x-trail"], tc.trail) || resp.Get("x-level") != tc.level {
			t.Errorf("most_specific_header_mutations_wins=%v: x-level %q (response %q), x-trail %q; want %q, %q",
				tc.mostSpecific, h.Get("x-level"), resp.Get("x-level"), h["x-trail"], tc.level, tc.trail)
		}
	}
}

func TestHeaderOpsErrors(t *testing.T) {
	compileErr(t, oneVhost(`{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c"},"request_headers_to_add":[{"header":{"key":":path","value":"/x"}}]}`),
		`route 0 ("r")`, "may not be modified")
	compileErr(t, `{"name":"rc","virtual_hosts":[{"name":"v","domains":["*"],"request_headers_to_remove":["Host"]}]}`,
		`virtual host 0 ("v")`, "may not be modified")
	compileErr(t, oneVhost(`{"name":"r","match":{"prefix":"/"},"route":{"cluster":"c"},"response_headers_to_add":[{"header":{"key":"x","value":"1"},"append":true,"append_action":"ADD_IF_ABSENT"}]}`),
		"both append and append_action")
}
