package http_test

import (
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

var _ listener.Drainer = (*hcm.Manager)(nil)

// TestDrain checks Envoy's drain sequence: after Drain, HTTP/1 responses
// close their connections (and say so), an open HTTP/2 connection gets
// GOAWAY NO_ERROR after finishing its stream, and new connections are
// still served.
func TestDrain(t *testing.T) {
	ms := startMesh(t, nil)
	c := client(t, false)

	resp := ms.proxy.do(t, c, "GET", "details", "/before", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("before drain: status %d, close %v; want 200 and keep-alive", resp.StatusCode, resp.Close)
	}

	h2 := dialH2(t, ms.proxy.addr)
	h2.headers(1, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "details"}, {":path", "/h2-before"}})
	if status, how := h2.outcome(1); status != http.StatusOK {
		t.Fatalf("h2 before drain: %d %s", status, how)
	}

	ms.proxy.m.Drain()
	ms.proxy.m.Drain() // idempotent

	for i := range 2 {
		resp := ms.proxy.do(t, c, "GET", "details", "/during", nil, nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusOK || !resp.Close {
			t.Fatalf("during drain #%d: status %d, close %v; want 200 with Connection: close", i, resp.StatusCode, resp.Close)
		}
	}

	goaway := false
	for !goaway {
		f, err := h2.fr.ReadFrame()
		if err != nil {
			t.Fatalf("h2 connection ended without GOAWAY: %v", err)
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeNo {
				t.Fatalf("GOAWAY %v, want NO_ERROR", g.ErrCode)
			}
			goaway = true
		}
	}

	// A new HTTP/2 connection is still served.
	h2b := dialH2(t, ms.proxy.addr)
	h2b.headers(1, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "details"}, {":path", "/h2-after"}})
	if status, how := h2b.outcome(1); status != http.StatusOK {
		t.Fatalf("new h2 connection after drain: %d %s", status, how)
	}
	if !ms.sawURI("/h2-after") {
		t.Error("backend did not see the request of the new HTTP/2 connection")
	}
}
