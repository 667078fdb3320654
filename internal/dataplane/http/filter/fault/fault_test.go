package fault

import (
	"net/http"
	"net/http/httptest"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

func faultAny(t *testing.T, js string) *anypb.Any {
	t.Helper()
	f := &faultv3.HTTPFault{}
	if err := protojson.Unmarshal([]byte(js), f); err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// serve runs the filter in front of a handler answering 200 and returns
// the response and the stream.
func serve(t *testing.T, f filter.Filter, r *route.Route, header http.Header) (*httptest.ResponseRecorder, *filter.Stream) {
	t.Helper()
	req := httptest.NewRequest("GET", "/x", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	s := filter.NewStream(w, req, func() uint64 { return 0 })
	s.Route = r
	s.Routing = route.Request{Method: "GET", Scheme: "http", Authority: "a", Path: "/x", Headers: filter.Header(req.Header)}
	s.GRPC = filter.IsGRPC(req.Header.Get("Content-Type"))
	f.Wrap(filter.HandlerFunc(func(s *filter.Stream) { s.Writer().WriteHeader(200) })).ServeStream(s)
	return w, s
}

func TestFault(t *testing.T) {
	t.Run("filter-level gRPC abort", func(t *testing.T) {
		f, err := Factory{}.Build("envoy.filters.http.fault", faultAny(t, `{"abort": {"grpc_status": 14, "percentage": {"numerator": 100}}}`))
		if err != nil {
			t.Fatal(err)
		}
		w, s := serve(t, f, nil, http.Header{"Content-Type": {"application/grpc"}})
		if w.Code != 200 || w.Header().Get("Grpc-Status") != "14" || s.Record.Flags != filter.FaultInjected {
			t.Errorf("got %d grpc-status %q flags %v", w.Code, w.Header().Get("Grpc-Status"), s.Record.Flags)
		}
	})
	t.Run("header condition", func(t *testing.T) {
		f, _ := Factory{}.Build("f", faultAny(t, `{"abort": {"http_status": 418, "percentage": {"numerator": 100}}, "headers": [{"name": "x-test", "string_match": {"exact": "yes"}}]}`))
		if w, _ := serve(t, f, nil, nil); w.Code != 200 {
			t.Errorf("without the header: %d", w.Code)
		}
		if w, _ := serve(t, f, nil, http.Header{"X-Test": {"yes"}}); w.Code != 418 || w.Body.String() != "fault filter abort" {
			t.Errorf("with the header: %d %q", w.Code, w.Body.String())
		}
	})
	t.Run("route config replaces the filter's", func(t *testing.T) {
		f, _ := Factory{}.Build("f", faultAny(t, `{"abort": {"http_status": 418, "percentage": {"numerator": 100}}}`))
		rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "v", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action:               &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200}},
				TypedPerFilterConfig: map[string]*anypb.Any{route.FaultFilter: faultAny(t, `{"abort": {"http_status": 503, "percentage": {"numerator": 100}}, "max_active_faults": 5}`)},
			}},
		}}}
		tbl, err := route.Compile(rc)
		if err != nil {
			t.Fatal(err)
		}
		r := tbl.Match(&route.Request{Method: "GET", Scheme: "http", Authority: "a", Path: "/"})
		if w, _ := serve(t, f, r, nil); w.Code != 503 {
			t.Errorf("got %d, want the route's 503", w.Code)
		}
	})
	t.Run("max_active_faults 0 disables", func(t *testing.T) {
		f, _ := Factory{}.Build("f", faultAny(t, `{"abort": {"http_status": 418, "percentage": {"numerator": 100}}, "max_active_faults": 0}`))
		if w, _ := serve(t, f, nil, nil); w.Code != 200 {
			t.Errorf("got %d", w.Code)
		}
	})
	t.Run("invalid config", func(t *testing.T) {
		if _, err := (Factory{}).Build("f", faultAny(t, `{"abort": {"http_status": 700}}`)); err == nil {
			t.Error("abort status 700 was accepted")
		}
	})
}
