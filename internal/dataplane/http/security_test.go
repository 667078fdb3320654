package http_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// exchange writes raw bytes to addr and reads one response. It reports
// the response (nil when the connection closed without one) and whether
// the connection was closed after it.
func exchange(t testing.TB, addr, raw string) (*http.Response, string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, "", true
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = br.ReadByte()
	return resp, string(body), errors.Is(err, io.EOF) || isReset(err)
}

func isReset(err error) bool {
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// sawURI reports whether a backend of the mesh served a request whose URI
// starts with prefix.
func (ms *mesh) sawURI(prefix string) bool {
	for _, b := range ms.backends {
		for _, s := range b.requests() {
			if strings.HasPrefix(s.URI, prefix) {
				return true
			}
		}
	}
	return false
}

// TestSmuggling covers SECURITY B2, B3, B4 and B6 over raw HTTP/1: each
// request is followed by a pipelined GET /admin-<case> that must never be
// routed; the bad request gets 400 (or 501) and the connection closes.
func TestSmuggling(t *testing.T) {
	ms := startMesh(t, nil)
	const host = "Host: details\r\n"
	cases := []struct {
		id, name, head, body string
		codes                []int
	}{
		{"B2", "cl-and-te", "POST /b2 HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", []int{400}},
		{"B2", "te-and-cl", "POST /b2b HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 35\r\n", "0\r\n\r\n", []int{400}},
		{"B3", "chunked-identity", "POST /b3 HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n", []int{400, 501}},
		{"B3", "space-before-colon", "POST /b3 HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n", "0\r\n\r\n", []int{400}},
		{"B3", "obs-fold", "POST /b3 HTTP/1.1\r\n" + host + "Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n", []int{400}},
		{"B3", "obs-fold-other", "GET /b3 HTTP/1.1\r\n" + host + "X-A: b\r\n\tc\r\n", "", []int{400}},
		{"B3", "two-te", "POST /b3 HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", []int{400, 501}},
		{"B3", "te-http10", "POST /b3 HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", []int{400}},
		{"B3", "bad-chunk-size", "POST /b3c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n", "ZZ\r\nabc\r\n0\r\n\r\n", []int{400}},
		{"B3", "chunk-bare-lf", "POST /b3d HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n", []int{400}},
		{"B3", "chunk-no-crlf", "POST /b3e HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n", "3\r\nabcXX0\r\n\r\n", []int{400}},
		{"B3", "differing-cl", "POST /b3 HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n", "abcd", []int{400}},
		{"B4", "cr-in-value", "GET /b4 HTTP/1.1\r\n" + host + "X-A: b\rc\r\n", "", []int{400}},
		{"B4", "nul-in-value", "GET /b4 HTTP/1.1\r\n" + host + "X-A: b\x00c\r\n", "", []int{400}},
		{"B4", "space-in-name", "GET /b4 HTTP/1.1\r\n" + host + "X A: b\r\n", "", []int{400}},
		{"B6", "no-host", "GET /b6 HTTP/1.1\r\n", "", []int{400}},
		{"B6", "empty-host", "GET /b6 HTTP/1.1\r\nHost: \r\n", "", []int{400}},
		{"B6", "two-hosts", "GET /b6 HTTP/1.1\r\nHost: details\r\nHost: ratings\r\n", "", []int{400}},
	}
	for _, tc := range cases {
		t.Run(tc.id+"/"+tc.name, func(t *testing.T) {
			smuggled := "/admin-" + tc.name
			raw := tc.head + "\r\n" + tc.body + "GET " + smuggled + " HTTP/1.1\r\n" + host + "\r\n"
			resp, body, closed := exchange(t, ms.proxy.addr, raw)
			if resp == nil {
				t.Fatal("connection closed without a response")
			}
			ok := false
			for _, c := range tc.codes {
				ok = ok || resp.StatusCode == c
			}
			if !ok {
				t.Errorf("status %d (%q), want one of %v", resp.StatusCode, body, tc.codes)
			}
			if !closed {
				t.Error("connection left open")
			}
			path := strings.Fields(tc.head)[1]
			if ms.sawURI(smuggled) || ms.sawURI(path) {
				t.Errorf("a backend saw the request (%s or %s)", path, smuggled)
			}
		})
	}

	t.Run("valid pipelined requests still work", func(t *testing.T) {
		raw := "POST /pipe1 HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n" +
			"POST /pipe2 HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi" +
			"GET /pipe3 HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n"
		c, err := net.Dial("tcp", ms.proxy.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(waitFor))
		io.WriteString(c, raw)
		br := bufio.NewReader(c)
		for i := 1; i <= 3; i++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("response %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("response %d: %d", i, resp.StatusCode)
			}
		}
		for _, p := range []string{"/pipe1", "/pipe2", "/pipe3"} {
			if !ms.sawURI(p) {
				t.Errorf("%s not served", p)
			}
		}
	})
}

// TestHeaderTrust covers SECURITY B1, B7, B8 and B9.
func TestHeaderTrust(t *testing.T) {
	ms := startMesh(t, func(h *hcmv3.HttpConnectionManager) { h.UseRemoteAddress = wrapperspb.Bool(true) })
	for _, proto := range protocols {
		t.Run(proto.name+"/B1 mesh-internal headers stripped", func(t *testing.T) {
			c := client(t, proto.h2)
			h := http.Header{
				"X-Envoy-Original-Path":   {"/admin"},
				"X-Envoy-Internal":        {"true"},
				"X-Trellis-Identity":      {"spiffe://cluster.local/ns/x/sa/admin"},
				"X-Forwarded-Client-Cert": {"By=spiffe://x;URI=spiffe://admin"},
				"X-Request-Id":            {"client-chosen"},
			}
			s := decodeSeen(t, ms.proxy.do(t, c, "GET", "details", "/b1", h, nil))
			for k := range h {
				if k == "X-Request-Id" {
					continue
				}
				if v := http.Header(s.Header).Values(k); len(v) > 0 {
					t.Errorf("%s reached the backend: %q", k, v)
				}
			}
			if v := http.Header(s.Header).Get("X-Request-Id"); v == "client-chosen" || v == "" {
				t.Errorf("edge request kept the client's x-request-id %q", v)
			}
		})
	}

	t.Run("B7 h2c upgrade refused", func(t *testing.T) {
		raw := "GET /b7 HTTP/1.1\r\nHost: details\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
		resp, _, _ := exchange(t, ms.proxy.addr, raw)
		if resp == nil || resp.StatusCode != 200 {
			t.Fatalf("response %v, want a plain 200", resp)
		}
		reqs := ms.backends[detailsV1].requests()
		last := reqs[len(reqs)-1]
		if last.URI != "/b7" {
			t.Fatalf("backend's last request %q", last.URI)
		}
		for _, k := range []string{"Upgrade", "Http2-Settings", "Connection"} {
			if v := http.Header(last.Header).Values(k); len(v) > 0 {
				t.Errorf("backend saw %s: %q", k, v)
			}
		}
	})

	t.Run("B8 upgrade answered 200 then a pipelined request", func(t *testing.T) {
		raw := "GET /b8 HTTP/1.1\r\nHost: details\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" +
			"GET /admin-b8 HTTP/1.1\r\nHost: details\r\n\r\n"
		resp, _, closed := exchange(t, ms.proxy.addr, raw)
		if resp == nil || resp.StatusCode != 200 || !closed {
			t.Fatalf("response %v closed %v, want the upstream's 200 and a closed connection", resp, closed)
		}
		if ms.sawURI("/admin-b8") {
			t.Error("the pipelined request was routed")
		}
	})

	t.Run("B9 Connection cannot remove proxy headers", func(t *testing.T) {
		raw := "GET /b9 HTTP/1.1\r\nHost: details\r\nConnection: close, x-forwarded-for, x-request-id, x-forwarded-proto\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n"
		resp, _, _ := exchange(t, ms.proxy.addr, raw)
		if resp == nil || resp.StatusCode != 200 {
			t.Fatalf("response %v", resp)
		}
		reqs := ms.backends[detailsV1].requests()
		h := http.Header(reqs[len(reqs)-1].Header)
		if got := h.Get("X-Forwarded-For"); got != "192.0.2.1,127.0.0.1" {
			t.Errorf("x-forwarded-for %q, want 192.0.2.1,127.0.0.1", got)
		}
		if h.Get("X-Request-Id") == "" || h.Get("X-Forwarded-Proto") != "http" {
			t.Errorf("proxy headers missing: %v", h)
		}
	})
}

// TestHeaderLimits covers SECURITY C5 and C6.
func TestHeaderLimits(t *testing.T) {
	ms := startMesh(t, func(h *hcmv3.HttpConnectionManager) {
		h.RequestHeadersTimeout = durationpb.New(300 * time.Millisecond)
	})
	many := func(n int) http.Header {
		h := http.Header{}
		for i := range n {
			h.Set(fmt.Sprintf("X-H-%d", i), "v")
		}
		return h
	}
	for _, proto := range protocols {
		c := client(t, proto.h2)
		t.Run(proto.name+"/C5 101 headers", func(t *testing.T) {
			resp := ms.proxy.do(t, c, "GET", "details", "/c5", many(101), nil)
			readAll(t, resp)
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("101 headers: %d, want 431", resp.StatusCode)
			}
			// 98, the client's User-Agent and Host: 100 header fields.
			resp = ms.proxy.do(t, c, "GET", "details", "/c5", many(98), nil)
			readAll(t, resp)
			if resp.StatusCode != 200 {
				t.Errorf("100 header fields: %d, want 200", resp.StatusCode)
			}
		})
	}
	t.Run("http1/C5 70 KiB header", func(t *testing.T) {
		raw := "GET /c5big HTTP/1.1\r\nHost: details\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n"
		resp, _, closed := exchange(t, ms.proxy.addr, raw)
		if resp == nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !closed {
			t.Errorf("response %v closed %v, want 431 and closed", resp, closed)
		}
	})
	// The default max_request_headers_kb (60, unset in the generated
	// configuration) bounds the whole head as the HTTP/1 codec counts it:
	// request line, header lines and the final empty line, CRLFs
	// included (findHeadEnd).
	const limit = 60 << 10
	for _, c := range []struct {
		name string
		size int
		code int
	}{
		{"one byte under", limit - 1, http.StatusOK},
		{"exactly", limit, http.StatusOK},
		{"one byte over", limit + 1, http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(fmt.Sprintf("http1/C5 head %s 60 KiB", c.name), func(t *testing.T) {
			path := fmt.Sprintf("/c5edge-%d", c.size)
			pre := "GET " + path + " HTTP/1.1\r\nHost: details\r\nX-Big: "
			const post = "\r\n\r\n"
			raw := pre + strings.Repeat("a", c.size-len(pre)-len(post)) + post
			if len(raw) != c.size {
				t.Fatalf("head of %d bytes, want %d", len(raw), c.size)
			}
			resp, _, closed := exchange(t, ms.proxy.addr, raw)
			if resp == nil || resp.StatusCode != c.code {
				t.Fatalf("%d-byte head: response %v, want %d", c.size, resp, c.code)
			}
			if c.code == http.StatusOK {
				if !ms.sawURI(path) {
					t.Errorf("%d-byte head: 200 but the backend did not see the request", c.size)
				}
				return
			}
			if !closed {
				t.Errorf("%d-byte head: 431 but the connection stayed open", c.size)
			}
			if ms.sawURI(path) {
				t.Errorf("%d-byte head: refused but forwarded", c.size)
			}
		})
	}
	t.Run("h2c/C5 70 KiB header", func(t *testing.T) {
		h2 := dialH2(t, ms.proxy.addr)
		h2.headers(1, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "details"}, {":path", "/c5big"}, {"x-big", strings.Repeat("a", 70<<10)}})
		status, how := h2.outcome(1)
		if status == 200 {
			t.Error("oversized header list served")
		}
		t.Logf("%d %s", status, how)
		if ms.sawURI("/c5big") {
			t.Error("backend saw the request")
		}
	})
	t.Run("C6 slowloris", func(t *testing.T) {
		c, err := net.Dial("tcp", ms.proxy.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			for _, b := range []byte("GET /c6 HTTP/1.1\r\nHost: details\r\nX-Slow: ") {
				if _, err := c.Write([]byte{b}); err != nil {
					done <- err
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			done <- nil
		}()
		_ = c.SetReadDeadline(time.Now().Add(waitFor))
		_, err = io.ReadAll(c)
		// Closing a connection with unread bytes from the slow client sends
		// a reset instead of a FIN: both mean the proxy closed it.
		if errors.Is(err, syscall.ECONNRESET) {
			err = nil
		}
		if d := time.Since(start); err != nil || d > 2*time.Second {
			t.Errorf("connection closed after %v (%v), want ~300ms", d, err)
		}
		c.Close()
		<-done
	})
}

// TestHTTP2Malformed covers SECURITY B5: malformed HTTP/2 requests are
// reset and never become upstream requests.
func TestHTTP2Malformed(t *testing.T) {
	ms := startMesh(t, nil)
	base := func(path string) [][2]string {
		return [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "details"}, {":path", path}}
	}
	cases := []struct {
		name   string
		fields [][2]string
	}{
		{"connection-header", append(base("/b5-conn"), [2]string{"connection", "keep-alive"})},
		{"transfer-encoding", append(base("/b5-te"), [2]string{"transfer-encoding", "chunked"})},
		{"upper-case-name", append(base("/b5-upper"), [2]string{"X-Upper", "1"})},
		{"pseudo-after-regular", [][2]string{{":method", "GET"}, {":scheme", "http"}, {"x-a", "1"}, {":authority", "details"}, {":path", "/b5-order"}}},
		{"duplicate-path", append(base("/b5-dup"), [2]string{":path", "/admin-b5"})},
		{"nul-in-path", base("/b5-nul\x00x")},
		{"crlf-in-value", append(base("/b5-crlf"), [2]string{"x-a", "b\r\nx-injected: 1"})},
	}
	t.Run("control: a valid request is served", func(t *testing.T) {
		h2 := dialH2(t, ms.proxy.addr)
		h2.headers(1, base("/h2-valid"))
		if status, how := h2.outcome(1); status != 200 {
			t.Fatalf("valid request: %d (%s)", status, how)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h2 := dialH2(t, ms.proxy.addr)
			h2.headers(1, tc.fields)
			status, how := h2.outcome(1)
			if status >= 200 && status < 300 {
				t.Errorf("served with %d (%s)", status, how)
			}
			t.Logf("%d %s", status, how)
			if ms.sawURI("/b5-") || ms.sawURI("/admin-b5") {
				t.Error("a backend saw the request")
			}
		})
	}
}

// h2conn is a raw HTTP/2 client connection for malformed frames.
type h2conn struct {
	t  testing.TB
	c  net.Conn
	fr *http2.Framer
}

func dialH2(t testing.TB, addr string) *h2conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = nil
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &h2conn{t: t, c: c, fr: fr}
}

// headers sends a request's header block, split into CONTINUATION frames
// as needed, with END_STREAM. Fields are encoded as given (no validation).
func (h *h2conn) headers(stream uint32, fields [][2]string) {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := buf.Bytes()
	const max = 16 << 10
	first := block
	if len(first) > max {
		first = block[:max]
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: first, EndStream: true, EndHeaders: len(block) <= max}); err != nil {
		h.t.Fatal(err)
	}
	for rest := block[len(first):]; len(rest) > 0; {
		n := min(len(rest), max)
		if err := h.fr.WriteContinuation(stream, n == len(rest), rest[:n]); err != nil {
			return // the server may have closed the connection already
		}
		rest = rest[n:]
	}
}

// outcome reads frames until stream gets a response status, a reset, or
// the connection ends.
func (h *h2conn) outcome(stream uint32) (int, string) {
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			return 0, "connection closed: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				return 0, "RST_STREAM " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return 0, "GOAWAY " + f.ErrCode.String()
		case *http2.HeadersFrame:
			if f.StreamID != stream {
				continue
			}
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				return 0, err.Error()
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					var code int
					fmt.Sscan(hf.Value, &code)
					return code, "response"
				}
			}
		}
	}
}

// TestNormalizationEndToEnd sends SECURITY A1–A7 paths through the proxy
// under Istio's path normalisation modes and checks what the backend gets
// (the path a policy would match on is the path forwarded).
func TestNormalizationEndToEnd(t *testing.T) {
	type mode struct {
		name    string
		merge   bool
		escaped hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction
	}
	modes := []mode{
		{"BASE", false, hcmv3.HttpConnectionManager_KEEP_UNCHANGED},
		{"MERGE_SLASHES", true, hcmv3.HttpConnectionManager_KEEP_UNCHANGED},
		{"DECODE_AND_MERGE_SLASHES", true, hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD},
		{"REJECT_ESCAPED_SLASHES", true, hcmv3.HttpConnectionManager_REJECT_REQUEST},
	}
	const reject = "400"
	// want holds the expected backend URI per mode, in modes' order.
	cases := []struct {
		id, path string
		want     [4]string
	}{
		{"A1", "//admin", [4]string{"//admin", "/admin", "/admin", "/admin"}},
		{"A1", "///admin", [4]string{"///admin", "/admin", "/admin", "/admin"}},
		{"A1", "/./admin", [4]string{"/admin", "/admin", "/admin", "/admin"}},
		{"A1", "/public/..//admin", [4]string{"//admin", "/admin", "/admin", "/admin"}},
		{"A2", "/%2Fadmin", [4]string{"/%2Fadmin", "/%2Fadmin", "/admin", reject}},
		{"A2", "/admin%2f", [4]string{"/admin%2f", "/admin%2f", "/admin/", reject}},
		{"A2", "/public%2f..%2fadmin", [4]string{"/public%2f..%2fadmin", "/public%2f..%2fadmin", "/admin", reject}},
		{"A2", "/%5cadmin", [4]string{"/%5cadmin", "/%5cadmin", "/admin", reject}},
		{"A3", "/public/%2e%2e/admin", [4]string{"/admin", "/admin", "/admin", "/admin"}},
		{"A3", "/%61dmin", [4]string{"/admin", "/admin", "/admin", "/admin"}},
		{"A4", "/%252e%252e/admin", [4]string{"/%252e%252e/admin", "/%252e%252e/admin", "/%252e%252e/admin", "/%252e%252e/admin"}},
		{"A6", "/admin?x=1", [4]string{"/admin?x=1", "/admin?x=1", "/admin?x=1", "/admin?x=1"}},
		{"A7", "/adm%00in", [4]string{reject, reject, reject, reject}},
		{"A7", "/adm%0d%0ain", [4]string{reject, reject, reject, reject}},
		{"A7", "/adm%0Ain", [4]string{reject, reject, reject, reject}},
	}
	for i, md := range modes {
		t.Run(md.name, func(t *testing.T) {
			ms := startMesh(t, func(h *hcmv3.HttpConnectionManager) {
				h.NormalizePath = wrapperspb.Bool(true)
				h.MergeSlashes = md.merge
				h.PathWithEscapedSlashesAction = md.escaped
			})
			for _, proto := range protocols {
				c := client(t, proto.h2)
				for _, tc := range cases {
					req, err := http.NewRequest("GET", "http://"+ms.proxy.addr+"/", nil)
					if err != nil {
						t.Fatal(err)
					}
					req.Host = "details"
					// The path goes out byte for byte (absolute-form on
					// HTTP/1, :path on HTTP/2).
					req.URL = &url.URL{Scheme: "http", Host: ms.proxy.addr, Opaque: "//details" + tc.path}
					resp, err := c.Do(req)
					if err != nil {
						t.Fatalf("%s %s: %v", proto.name, tc.path, err)
					}
					want := tc.want[i]
					if want == reject {
						readAll(t, resp)
						if resp.StatusCode != 400 {
							t.Errorf("%s %s %s: %d, want 400", proto.name, tc.id, tc.path, resp.StatusCode)
						}
						continue
					}
					s := decodeSeen(t, resp)
					if s.URI != want {
						t.Errorf("%s %s %s: backend got %q, want %q", proto.name, tc.id, tc.path, s.URI, want)
					}
				}
			}
			// A5 and raw controls (A7) need a raw HTTP/1 request line.
			resp, _, _ := exchange(t, ms.proxy.addr, "GET /admin#x HTTP/1.1\r\nHost: details\r\n\r\n")
			if resp == nil || resp.StatusCode != 200 {
				t.Fatalf("A5: %v", resp)
			}
			reqs := ms.backends[detailsV1].requests()
			if got := reqs[len(reqs)-1].URI; got != "/admin" {
				t.Errorf("A5 /admin#x: backend got %q, want /admin", got)
			}
			for _, raw := range []string{"/adm\x00in", "/adm\rin", "/adm\nin"} {
				resp, _, _ := exchange(t, ms.proxy.addr, "GET "+raw+" HTTP/1.1\r\nHost: details\r\n\r\n")
				if resp != nil && resp.StatusCode != 400 {
					t.Errorf("A7 raw %q: %d, want 400", raw, resp.StatusCode)
				}
			}
		})
	}
}
