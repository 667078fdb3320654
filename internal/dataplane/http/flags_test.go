package http_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
)

// upstreamFunc adapts a function to router.Upstream.
type upstreamFunc func(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, router.Info, error)

func (f upstreamFunc) RoundTrip(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
	return f(ctx, cluster, pick, req)
}

// inlineHCM is an HTTP connection manager with an inline route table (JSON
// routes of one "*" virtual host) and the fault, cors and router filters.
func inlineHCM(t testing.TB, routes string) *hcmv3.HttpConnectionManager {
	t.Helper()
	js := `{
	  "stat_prefix": "inline",
	  "route_config": {"name": "inline", "virtual_hosts": [{"name": "vh", "domains": ["*"], "routes": [` + routes + `]}]},
	  "http_filters": [
	    {"name": "envoy.filters.http.fault", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
	    {"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
	    {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
	  ]
	}`
	h := &hcmv3.HttpConnectionManager{}
	if err := protojson.Unmarshal([]byte(js), h); err != nil {
		t.Fatalf("decoding HCM: %v\n%s", err, js)
	}
	return h
}

// TestResponseFlags checks the local replies and Envoy response flags of
// upstream failures, missing routes and clusters, and downstream
// disconnects.
func TestResponseFlags(t *testing.T) {
	up := newTestUpstream(t)
	ok := newBackend(t, "ok")
	up.add("ok", ok.addr(), false)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	up.add("refused", deadAddr, false)
	up.backends["empty"] = nil
	wrapped := upstreamFunc(func(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
		switch cluster {
		case "overflow":
			return nil, router.Info{}, router.ErrOverflow
		case "reset":
			return nil, router.Info{Host: "10.0.0.9:80"}, router.ErrConnectionTermination
		}
		return up.RoundTrip(ctx, cluster, pick, req)
	})
	routes := `
	  {"match": {"prefix": "/refused-retried"}, "route": {"cluster": "refused", "retry_policy": {"retry_on": "connect-failure", "num_retries": 2}}},
	  {"match": {"prefix": "/refused"}, "route": {"cluster": "refused"}},
	  {"match": {"prefix": "/empty"}, "route": {"cluster": "empty"}},
	  {"match": {"prefix": "/overflow"}, "route": {"cluster": "overflow"}},
	  {"match": {"prefix": "/reset"}, "route": {"cluster": "reset"}},
	  {"match": {"prefix": "/unknown"}, "route": {"cluster": "nope", "cluster_not_found_response_code": "NOT_FOUND"}},
	  {"match": {"prefix": "/header"}, "route": {"cluster_header": "x-cluster"}},
	  {"match": {"prefix": "/pertry"}, "route": {"cluster": "ok", "retry_policy": {"retry_on": "5xx", "num_retries": 1, "per_try_timeout": "0.1s"}}},
	  {"match": {"prefix": "/"}, "route": {"cluster": "ok", "idle_timeout": "0.2s"}}`
	h := inlineHCM(t, routes)
	p := serveManager(t, h, hcm.Deps{Upstream: wrapped})
	c := client(t, false)

	cases := []struct {
		path   string
		header http.Header
		code   int
		flags  string
		body   string
	}{
		{"/refused", nil, 503, "UF", "upstream connect error or disconnect/reset before headers. reset reason: connection failure"},
		{"/refused-retried", nil, 503, "UF,URX", ""},
		{"/empty", nil, 503, "UH", "no healthy upstream"},
		{"/overflow", nil, 503, "UO", ""},
		{"/reset", nil, 503, "UC", ""},
		{"/unknown", nil, 404, "NC", ""},
		{"/header", nil, 503, "NC", ""},
		{"/header", http.Header{"X-Cluster": {"ok"}}, 200, "-", ""},
		{"/pertry/slow", nil, 504, "UT,URX", "upstream request timeout"},
	}
	for _, tc := range cases {
		t.Run(strings.TrimPrefix(tc.path, "/")+"/"+tc.flags, func(t *testing.T) {
			resp := p.do(t, c, "GET", "any", tc.path, tc.header, nil)
			body := readAll(t, resp)
			if resp.StatusCode != tc.code || (tc.body != "" && body != tc.body) {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.code, tc.body)
			}
			rec := p.rec.wait(t, func(r *filter.Record) bool {
				return r.Path == tc.path && r.ResponseCode == resp.StatusCode && r.Flags.String() == tc.flags
			})
			if tc.path == "/refused-retried" && rec.Attempts != 3 {
				t.Errorf("attempts %d, want 3", rec.Attempts)
			}
		})
	}

	t.Run("no route/NR", func(t *testing.T) {
		h := inlineHCM(t, `{"match": {"path": "/only"}, "route": {"cluster": "ok"}}`)
		p := serveManager(t, h, hcm.Deps{Upstream: up})
		resp := p.do(t, c, "GET", "any", "/other", nil, nil)
		readAll(t, resp)
		if resp.StatusCode != 404 {
			t.Errorf("got %d", resp.StatusCode)
		}
		p.rec.wait(t, func(r *filter.Record) bool { return r.Flags.String() == "NR" && r.ResponseCode == 404 })
	})

	t.Run("downstream disconnect/DC", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr+"/slow", nil)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("the slow request returned")
		}
		rec := p.rec.wait(t, byPath("/slow"))
		if !rec.Flags.Has(filter.DownstreamConnectionTermination) || rec.ResponseCode != 0 {
			t.Errorf("record flags %v code %d, want DC and 0", rec.Flags, rec.ResponseCode)
		}
	})

	t.Run("stream idle timeout/SI", func(t *testing.T) {
		// The route's idle_timeout (0.2s) ends a request whose upstream
		// says nothing.
		start := time.Now()
		resp := p.do(t, c, "GET", "any", "/slow/idle", nil, nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusRequestTimeout || time.Since(start) > 3*time.Second {
			t.Errorf("got %d after %v, want 408 after ~200ms", resp.StatusCode, time.Since(start))
		}
		p.rec.wait(t, func(r *filter.Record) bool { return r.Path == "/slow/idle" && r.Flags.String() == "SI" })
	})
}

// TestRequestTimeout checks request_timeout: a request body that does not
// arrive in time gets 408.
func TestRequestTimeout(t *testing.T) {
	up := newTestUpstream(t)
	b := newBackend(t, "ok")
	up.add("ok", b.addr(), false)
	h := inlineHCM(t, `{"match": {"prefix": "/"}, "route": {"cluster": "ok"}}`)
	h.RequestTimeout = durationpb.New(200 * time.Millisecond)
	p := serveManager(t, h, hcm.Deps{Upstream: up})
	raw := "POST /trickle HTTP/1.1\r\nHost: any\r\nContent-Length: 10\r\n\r\nabc"
	resp, _, _ := exchange(t, p.addr, raw)
	if resp == nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("response %v, want 408", resp)
	}
	p.rec.wait(t, func(r *filter.Record) bool { return r.Path == "/trickle" && r.ResponseCode == 408 })
}
