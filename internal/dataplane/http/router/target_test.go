package router

import (
	"context"
	"net/http"
	"strconv"
	"testing"
)

// TestTargetReuse: a request forwarded in one attempt, without a body,
// and answered to the end hands its target (upstream request, URL,
// header map) to a later one, and nothing of it reaches the next
// upstream request; a request with a body or a retry keeps its own.
func TestTargetReuse(t *testing.T) {
	tbl := compileRoute(t, `{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"},
	  "route": {"cluster": "main", "retry_policy": {"retry_on": "5xx", "num_retries": 1}}}]}`)
	type call struct {
		req    *http.Request
		header http.Header
		url    string
	}
	var calls []call
	fail := false
	up := upstreamFunc(func(ctx context.Context, _ string, pick PickContext, req *http.Request) (*http.Response, Info, error) {
		calls = append(calls, call{req: req, header: req.Header.Clone(), url: req.URL.String()})
		if fail && pick.Attempt == 0 {
			return &http.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody}, Info{Host: "a"}, nil
		}
		return ok("ok"), Info{Host: "a"}, nil
	})
	r := New(Config{Upstream: up})
	defer r.Close()
	serve := func(t *testing.T, i int, method, body string) {
		t.Helper()
		s, w := stream(t, tbl, method, body)
		s.Request.Header.Set("X-Only-"+strconv.Itoa(i), "v")
		r.ServeStream(s)
		if w.Code != 200 {
			t.Fatalf("request %d: status %d", i, w.Code)
		}
	}

	const n = 20
	for i := range n {
		serve(t, i, "GET", "")
	}
	reqs := map[*http.Request]bool{}
	for i, c := range calls {
		reqs[c.req] = true
		for k := range c.header {
			if k != "X-Only-"+strconv.Itoa(i) && k != "X-Forwarded-Proto" && k != "X-Envoy-Expected-Rq-Timeout-Ms" {
				t.Errorf("upstream request %d has %s", i, k)
			}
		}
		if c.url != "http://svc/m" {
			t.Errorf("upstream request %d to %q", i, c.url)
		}
	}
	if len(reqs) == n {
		t.Error("no request reused a target")
	}

	// Neither a request with a body nor a retried one hands it on.
	calls = nil
	serve(t, n, "POST", "body")
	fail = true
	serve(t, n+1, "GET", "")
	fail = false
	kept := map[*http.Request]bool{}
	for _, c := range calls {
		kept[c.req] = true
	}
	calls = nil
	for i := range n {
		serve(t, n+2+i, "GET", "")
	}
	for i, c := range calls {
		if kept[c.req] {
			t.Fatalf("request %d got the upstream request of a request with a body or a retry", n+2+i)
		}
	}
}
