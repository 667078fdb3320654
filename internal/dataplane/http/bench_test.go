package http

import "testing"

// BenchmarkH1GuardScan is the framing guard on a keep-alive request head
// like the benchmark client's (fortio through a sidecar).
func BenchmarkH1GuardScan(b *testing.B) {
	head := []byte("GET /echo?size=1024 HTTP/1.1\r\nHost: echo.default.svc.cluster.local:8080\r\n" +
		"User-Agent: fortio.org/fortio-1.69.0\r\nX-Forwarded-Proto: http\r\nX-Request-Id: 6a0e5d3c-7d1b-4a4e-9d8c-3f0a2b1c4d5e\r\n" +
		"Content-Length: 0\r\n\r\n")
	g := &h1guard{maxHead: 64 << 10}
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := g.scan(head); err != nil || n != len(head) {
			b.Fatal(n, err)
		}
	}
}
