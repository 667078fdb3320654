package pool_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// releaser is what the router finds on a response body it is done with.
type releaser interface{ Release() bool }

// TestH1ResponseRelease: a released HTTP/1.1 response serves a later
// response of the pool (the same *http.Response comes back) with nothing
// of the earlier one left in it; a response whose body has not ended, or
// that has trailers, is not released.
func TestH1ResponseRelease(t *testing.T) {
	const n = 40
	var rs []string
	for i := range n {
		rs = append(rs, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Seq: %d\r\nX-Only-%d: v\r\n\r\nok", i, i))
	}
	rs = append(rs, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nok\r\n0\r\nX-T: t\r\n\r\n")
	srv := newRawServer(t, replies(rs...))
	p := h1Pool(t, srv.addr())
	ctx := context.Background()

	seen := map[*http.Response]bool{}
	reused := 0
	for i := range n {
		resp, _, err := get(t, p, ctx, "/"+strconv.Itoa(i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if seen[resp] {
			reused++
		}
		seen[resp] = true
		if got := resp.Header.Get("X-Seq"); got != strconv.Itoa(i) {
			t.Fatalf("response %d: X-Seq %q", i, got)
		}
		for k := range resp.Header {
			if k != "Content-Length" && k != "X-Seq" && k != "X-Only-"+strconv.Itoa(i) {
				t.Errorf("response %d has %s (of an earlier response)", i, k)
			}
		}
		rb, ok := resp.Body.(releaser)
		if !ok {
			t.Fatalf("response %d: body %T has no Release", i, resp.Body)
		}
		if i == 0 && rb.Release() {
			t.Fatal("a response was released before its body ended")
		}
		if body := readAll(t, resp); body != "ok" {
			t.Fatalf("response %d: body %q", i, body)
		}
		if !rb.Release() {
			t.Fatalf("response %d: not released after its body ended", i)
		}
	}
	// sync.Pool drops a share of what it is given under the race
	// detector, so not every response is reused; some must be.
	if reused == 0 {
		t.Error("no response reused a released one")
	}

	resp, _, err := get(t, p, ctx, "/trailers")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.Trailer.Get("X-T") != "t" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
	if resp.Body.(releaser).Release() {
		t.Error("a response with trailers was released")
	}
}
