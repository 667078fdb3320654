package http_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
)

// BenchmarkServeHTTP is one request through the connection manager, the
// fault, cors and router filters and a canned upstream (no sockets): the
// proxy's own per-request work, net/http's excluded.
func BenchmarkServeHTTP(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := upstreamFunc(func(ctx context.Context, cluster string, pick router.PickContext, req *http.Request) (*http.Response, router.Info, error) {
		return &http.Response{
			StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"1024"}},
			ContentLength: 1024,
			Body:          io.NopCloser(strings.NewReader(body)),
		}, router.Info{}, nil
	})
	m, err := hcm.Compile(inlineHCM(b, `{"match": {"prefix": "/"}, "route": {"cluster": "echo"}}`), hcm.Deps{Upstream: up})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	req := httptest.NewRequest("GET", "http://echo.default.svc.cluster.local:8080/echo?size=1024", nil)
	req.Header.Set("User-Agent", "fortio.org/fortio-1.69.0")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, req.Clone(req.Context()))
		if w.Code != 200 || w.Body.Len() != 1024 {
			b.Fatal(w.Code, w.Body.Len())
		}
	}
}
