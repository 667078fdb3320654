package pool

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
)

// FuzzResponseHead feeds the response head reader and parser arbitrary
// bytes: they must not panic, must stay within their limits, and what
// they accept must be well formed (canonical keys, values without
// CR/LF/NUL, a consistent framing).
func FuzzResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n",
		"HTTP/1.0 204 No Content\r\nconnection: keep-alive\r\n\r\n",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.1 200\nx-a: 1\nX-A: 2\n\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		head, err := readHead(br, nil, maxHeadBytes, false)
		if len(head) > maxHeadBytes {
			t.Fatalf("head of %d bytes read", len(head))
		}
		if err != nil {
			return
		}
		var r h1Response
		resp := &r.resp
		if err := parseHead(string(head), resp, r.vals[:], nil); err != nil {
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 || resp.ProtoMajor != 1 {
			t.Fatalf("status %d proto %d", resp.StatusCode, resp.ProtoMajor)
		}
		if len(resp.Header) > maxHeaderFields {
			t.Fatalf("%d fields", len(resp.Header))
		}
		for k, vs := range resp.Header {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("key %q not canonical", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("value %q of %q", v, k)
				}
			}
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			r := *resp
			r.Header = resp.Header.Clone()
			mode, n, err := framing(&r, method)
			if err != nil {
				continue
			}
			switch {
			case mode == bodyLength && (n <= 0 || r.ContentLength != n):
				t.Fatalf("length body of %d (ContentLength %d)", n, r.ContentLength)
			case mode == bodyChunked && r.Header.Get("Content-Length") != "":
				t.Fatal("chunked with a Content-Length")
			case mode != bodyNone && method == http.MethodHead:
				t.Fatal("body for HEAD")
			}
		}
	})
}
