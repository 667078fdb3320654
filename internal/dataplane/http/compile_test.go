package http_test

import (
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

const (
	faultAny  = `{"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}`
	routerAny = `{"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}`
	unknown   = `{"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}`
)

// hcmJSON decodes an HttpConnectionManager written in proto JSON; the
// stat prefix and an inline route table are added when absent.
func hcmJSON(t *testing.T, js string) *hcmv3.HttpConnectionManager {
	t.Helper()
	h := &hcmv3.HttpConnectionManager{}
	if err := protojson.Unmarshal([]byte(js), h); err != nil {
		t.Fatalf("decoding: %v\n%s", err, js)
	}
	if h.StatPrefix == "" {
		h.StatPrefix = "test"
	}
	return h
}

func filters(fs ...string) string {
	return `"route_config": {"name": "r"}, "http_filters": [` + strings.Join(fs, ",") + `]`
}

func TestCompileErrors(t *testing.T) {
	deps := hcm.Deps{Upstream: newTestUpstream(t)}
	cases := []struct {
		name string
		js   string
		want []string // fragments of the error, "" case for success
	}{
		{"valid", `{` + filters(`{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`) + `}`, nil},
		{"unknown filter", `{` + filters(`{"name": "acme.filter", "typed_config": `+unknown+`}`, `{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`) + `}`,
			[]string{`http_connection_manager "test"`, "http_filters", "[0] (acme.filter)", `unknown filter type "type.googleapis.com/google.protobuf.Struct"`}},
		{"unknown optional filter skipped", `{` + filters(`{"name": "acme.filter", "is_optional": true, "typed_config": `+unknown+`}`, `{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`) + `}`, nil},
		{"router not last", `{` + filters(`{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`, `{"name": "envoy.filters.http.fault", "typed_config": `+faultAny+`}`) + `}`,
			[]string{"terminal filter \"envoy.filters.http.router\" must be the last one"}},
		{"no router", `{` + filters(`{"name": "envoy.filters.http.fault", "typed_config": `+faultAny+`}`) + `}`,
			[]string{"the last filter \"envoy.filters.http.fault\" is not a terminal filter"}},
		{"no filters", `{"route_config": {"name": "r"}}`, []string{"no HTTP filters"}},
		{"no typed_config", `{` + filters(`{"name": "envoy.filters.http.router"}`) + `}`, []string{"[0] (envoy.filters.http.router): no typed_config"}},
		{"invalid fault", `{` + filters(`{"name": "f", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault", "abort": {"http_status": 700, "percentage": {"numerator": 1}}}}`, `{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`) + `}`,
			[]string{"[0] (f)", "HTTPFault"}},
		{"router upstream filters", `{` + filters(`{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router", "upstream_http_filters": [{"name": "x", "typed_config": `+unknown+`}]}}`) + `}`,
			[]string{"upstream_http_filters are not supported"}},
		{"http3", `{"codec_type": "HTTP3", ` + filters(`{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`) + `}`, []string{"codec_type", "HTTP3"}},
		{"scoped routes", `{"scoped_routes": {"name": "s", "scope_key_builder": {"fragments": [{"header_value_extractor": {"name": "x", "index": 0}}]}, "rds_config_source": {"ads": {}}, "scoped_rds": {"scoped_rds_config_source": {"ads": {}}}}, "http_filters": [{"name": "envoy.filters.http.router", "typed_config": ` + routerAny + `}]}`, []string{"scoped_routes"}},
		{"rds without provider", `{"rds": {"route_config_name": "x", "config_source": {"ads": {}}}, "http_filters": [{"name": "envoy.filters.http.router", "typed_config": ` + routerAny + `}]}`, []string{"rds", "no RouteProvider"}},
		{"bad inline route", `{"route_config": {"name": "r", "virtual_hosts": [{"name": "a", "domains": ["*"]}, {"name": "b", "domains": ["*"]}]}, "http_filters": [{"name": "envoy.filters.http.router", "typed_config": ` + routerAny + `}]}`,
			[]string{"route_config", "only a single wildcard domain"}},
		{"connect upgrade", `{"upgrade_configs": [{"upgrade_type": "CONNECT"}], ` + filters(`{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`) + `}`, []string{"upgrade_configs[0]", "CONNECT upgrades are not supported"}},
		{"h2c upgrade", `{"upgrade_configs": [{"upgrade_type": "h2c"}], ` + filters(`{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`) + `}`, []string{"upgrade_configs[0]", "h2c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := hcmJSON(t, tc.js)
			m, err := hcm.Compile(h, deps)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				m.Close()
				return
			}
			if err == nil {
				m.Close()
				t.Fatalf("Compile succeeded; want an error mentioning %q", tc.want)
			}
			var ce *hcm.Error
			if !errors.As(err, &ce) {
				t.Errorf("error %T, want *http.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("PGV validation", func(t *testing.T) {
		h := hcmJSON(t, `{`+filters(`{"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}`)+`}`)
		h.StatPrefix = ""
		if _, err := hcm.Compile(h, deps); err == nil || !strings.Contains(err.Error(), "StatPrefix") {
			t.Errorf("got %v, want a PGV error on stat_prefix", err)
		}
		h.StatPrefix = "x"
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{}
		if m, err := hcm.Compile(h, hcm.Deps{}); err == nil {
			m.Close()
			t.Error("Compile without an Upstream succeeded")
		}
	})
}

// TestFilterRegistry checks extra filters from Deps.Filters, their order,
// and per-route disabling through typed_per_filter_config.
func TestFilterRegistry(t *testing.T) {
	up := newTestUpstream(t)
	b := newBackend(t, "ok")
	up.add("ok", b.addr(), false)
	tag := filter.FactoryFunc(func(name string, cfg *anypb.Any) (filter.Filter, error) {
		st := &structpb.Struct{}
		if err := cfg.UnmarshalTo(st); err != nil {
			return nil, err
		}
		v := st.GetFields()["value"].GetStringValue()
		return wrapFunc(func(next filter.Handler) filter.Handler {
			return filter.HandlerFunc(func(s *filter.Stream) {
				s.Request.Header.Add("X-Tag", v)
				next.ServeStream(s)
			})
		}), nil
	})
	js := `{
	  "stat_prefix": "reg",
	  "route_config": {"name": "r", "virtual_hosts": [{"name": "vh", "domains": ["*"], "routes": [
	    {"match": {"prefix": "/off"}, "route": {"cluster": "ok"}, "typed_per_filter_config": {"tag-b": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "disabled": true}}},
	    {"match": {"prefix": "/on"}, "route": {"cluster": "ok"}, "typed_per_filter_config": {"tag-c": {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig", "config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}}}},
	    {"match": {"prefix": "/"}, "route": {"cluster": "ok"}}]}]},
	  "http_filters": [
	    {"name": "tag-a", "typed_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"value": "a"}}},
	    {"name": "tag-b", "typed_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"value": "b"}}},
	    {"name": "tag-c", "disabled": true, "typed_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"value": "c"}}},
	    {"name": "envoy.filters.http.router", "typed_config": ` + routerAny + `}]
	}`
	h := hcmJSON(t, js)
	p := serveManager(t, h, hcm.Deps{Upstream: up, Filters: filter.Registry{"type.googleapis.com/google.protobuf.Struct": tag}})
	c := client(t, false)
	for path, want := range map[string]string{"/": "a,b", "/off": "a", "/on": "a,b,c"} {
		s := decodeSeen(t, p.do(t, c, "GET", "any", path, nil, nil))
		if got := strings.Join(s.Header["X-Tag"], ","); got != want {
			t.Errorf("%s: filters ran %q, want %q", path, got, want)
		}
	}
}

type wrapFunc func(next filter.Handler) filter.Handler

func (f wrapFunc) Wrap(next filter.Handler) filter.Handler { return f(next) }
