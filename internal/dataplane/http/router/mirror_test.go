package router

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

type upstreamFunc func(ctx context.Context, cluster string, pick PickContext, req *http.Request) (*http.Response, Info, error)

func (f upstreamFunc) RoundTrip(ctx context.Context, cluster string, pick PickContext, req *http.Request) (*http.Response, Info, error) {
	return f(ctx, cluster, pick, req)
}

func ok(body string) *http.Response {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
}

// stream builds a routed stream for method/body on host "svc".
func stream(t *testing.T, tbl *route.Table, method, body string) (*filter.Stream, *httptest.ResponseRecorder) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "http://svc/m", rd)
	w := httptest.NewRecorder()
	s := filter.NewStream(w, req, func() uint64 { return 0 })
	s.Conn = &listener.Conn{}
	s.BufferLimit = 1 << 10
	s.Routing = route.Request{Method: method, Scheme: "http", Authority: "svc", Path: "/m", Headers: filter.Header(req.Header)}
	s.Route = tbl.Match(&s.Routing)
	f := s.Route.Action.(*route.Forward)
	s.Cluster, s.Weighted, s.ClusterOK = f.ClusterFor(&s.Routing)
	return s, w
}

func TestMirror(t *testing.T) {
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal([]byte(`{"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
	  {"match": {"prefix": "/"}, "route": {"cluster": "main", "request_mirror_policies": [{"cluster": "shadow"}]}}]}]}`), rc); err != nil {
		t.Fatal(err)
	}
	tbl, err := route.Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	var mirrored []string
	up := upstreamFunc(func(ctx context.Context, cluster string, _ PickContext, req *http.Request) (*http.Response, Info, error) {
		if cluster == "main" {
			if req.Body != nil {
				_, _ = io.Copy(io.Discard, req.Body)
			}
			return ok("main"), Info{Host: "10.0.0.1:80"}, nil
		}
		var b []byte
		if req.Body != nil {
			b, _ = io.ReadAll(req.Body)
		}
		mu.Lock()
		mirrored = append(mirrored, req.Host+" "+req.Method+" "+string(b))
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ok(""), Info{}, nil
	})
	r := New(Config{Upstream: up, MaxMirrors: 1})

	// The first mirror blocks in the upstream; the main response is not
	// held up, and the second mirror finds the pool full.
	for i, body := range []string{"payload", ""} {
		s, w := stream(t, tbl, map[bool]string{true: "POST", false: "GET"}[body != ""], body)
		done := make(chan struct{})
		go func() { defer close(done); r.ServeStream(s) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d: the main response waited for its mirror", i)
		}
		if w.Code != 200 || w.Body.String() != "main" {
			t.Errorf("request %d: main response %d %q", i, w.Code, w.Body.String())
		}
	}
	if r.Dropped() != 1 {
		t.Errorf("dropped %d mirrors, want 1 (pool of 1, first one stuck)", r.Dropped())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(mirrored)
		mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if len(mirrored) != 1 || mirrored[0] != "svc-shadow POST payload" {
		t.Errorf("mirrored %q, want one copy to svc-shadow with the body", mirrored)
	}
	mu.Unlock()
	close(release)
	r.Close()
}
