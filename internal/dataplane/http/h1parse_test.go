package http

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"net"
	nethttp "net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseHead(t *testing.T) {
	var h requestHead
	head := "GET http://Example.com:8080/a%2Fb?q=1 HTTP/1.1\r\nhost: ignored\r\nx-forwarded-for: 1.2.3.4\r\nX-Forwarded-For:  5.6.7.8 \r\n" +
		"content-type: text/plain\r\nconnection: keep-alive, close\r\nX_Under: u\r\n\r\n"
	if err := parseHead([]byte(head), &h); err != nil {
		t.Fatal(err)
	}
	want := nethttp.Header{
		"X-Forwarded-For": {"1.2.3.4", "5.6.7.8"},
		"Content-Type":    {"text/plain"},
		"Connection":      {"keep-alive, close"},
		"X_under":         {"u"},
	}
	if !maps.EqualFunc(h.header, want, slices.Equal) {
		t.Errorf("header %v, want %v", h.header, want)
	}
	if !h.closeAfter || h.host != "ignored" || h.contentLength != 0 {
		t.Errorf("close %v host %q length %d", h.closeAfter, h.host, h.contentLength)
	}
	r, perr := h.request(context.Background())
	if perr != nil {
		t.Fatal(perr)
	}
	if r.Host != "Example.com:8080" || r.URL.Path != "/a/b" || r.URL.RawPath != "/a%2Fb" || r.RequestURI != "http://Example.com:8080/a%2Fb?q=1" {
		t.Errorf("host %q url %#v uri %q", r.Host, r.URL, r.RequestURI)
	}
	if r.Context() == nil || r.ProtoMajor != 1 || r.ProtoMinor != 1 || !r.Close {
		t.Errorf("request %+v", r)
	}

	if err := parseHead([]byte("CONNECT example.com:443 HTTP/1.1\r\n\r\n"), &h); err != nil {
		t.Fatal(err)
	}
	if r, perr := h.request(context.Background()); perr != nil || r.Host != "example.com:443" || r.URL.Scheme != "" {
		t.Errorf("CONNECT: %v %+v", perr, r)
	}
}

// BenchmarkParseHead is a keep-alive request head like the benchmark
// client's (fortio through a sidecar): parsing and the *http.Request.
func BenchmarkParseHead(b *testing.B) {
	head := []byte("GET /echo?size=1024 HTTP/1.1\r\nHost: echo.default.svc.cluster.local:8080\r\n" +
		"User-Agent: fortio.org/fortio-1.69.0\r\nX-Forwarded-Proto: http\r\nX-Request-Id: 6a0e5d3c-7d1b-4a4e-9d8c-3f0a2b1c4d5e\r\n" +
		"Content-Length: 0\r\n\r\n")
	ctx := context.Background()
	var h requestHead
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if end, _ := findHeadEnd(head, 0); end != len(head) {
			b.Fatal(end)
		}
		if err := parseHead(head, &h); err != nil {
			b.Fatal(err)
		}
		if _, err := h.request(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// memConn is a net.Conn reading a fixed stream in pieces of at most n
// bytes; writes are discarded.
type memConn struct {
	net.Conn
	r *strings.Reader
	n int
}

func (m *memConn) Read(p []byte) (int, error) {
	if len(p) > m.n {
		p = p[:m.n]
	}
	return m.r.Read(p)
}

func (m *memConn) Write(p []byte) (int, error)     { return len(p), nil }
func (m *memConn) SetReadDeadline(time.Time) error { return nil }

// FuzzParseRequestHead feeds streams to the head parser and the body
// reader, read in pieces of a fuzzed size. It checks that nothing panics,
// that finding the end of a head does not depend on how the stream is
// split, that an accepted head, written out again, parses to the same
// request, and that a fixed-length body is read byte for byte.
func FuzzParseRequestHead(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"\r\nGET /x?y=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10  \r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\n\r\n",
	}
	// The raw cases of the security tests (SECURITY B2–B4, B6).
	for _, tc := range []string{
		"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "Transfer-Encoding: chunked\r\nContent-Length: 35\r\n",
		"Transfer-Encoding: chunked, identity\r\n", "Transfer-Encoding : chunked\r\n", "Transfer-Encoding:\r\n chunked\r\n",
		"X-A: b\r\n\tc\r\n", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "Content-Length: 3\r\nContent-Length: 4\r\n",
		"X-A: b\rc\r\n", "X-A: b\x00c\r\n", "X A: b\r\n", "Host: \r\n", "Host: details\r\nHost: ratings\r\n",
	} {
		seeds = append(seeds, "POST /s HTTP/1.1\r\nHost: a\r\n"+tc+"\r\n0\r\n\r\n")
	}
	for _, body := range []string{"ZZ\r\nabc\r\n0\r\n\r\n", "3\nabc\r\n0\r\n\r\n", "3\r\nabcXX0\r\n\r\n", "0\r\nT: 1\r\n x\r\n\r\n"} {
		seeds = append(seeds, "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
	}
	for _, s := range seeds {
		f.Add(s, uint8(1))
		f.Add(s, uint8(7))
	}
	f.Fuzz(func(t *testing.T, stream string, split uint8) {
		b := []byte(stream)
		b = b[skipEmptyLines(b):]
		end, _ := findHeadEnd(b, 0)
		// Incrementally, as reads arrive.
		step := int(split%16) + 1
		end2, next := 0, 0
		for n := step; end2 == 0; n += step {
			n = min(n, len(b))
			end2, next = findHeadEnd(b[:n], next)
			if n == len(b) {
				break
			}
		}
		if end != end2 {
			t.Fatalf("head end %d at once, %d in pieces of %d", end, end2, step)
		}
		if end == 0 {
			return
		}
		var h requestHead
		if perr := parseHead(b[:end], &h); perr != nil {
			if perr.status < 400 || perr.reason == "" {
				t.Fatalf("rejection without a status or reason: %+v", perr)
			}
			return
		}
		if h.chunked && h.contentLength != -1 || !h.chunked && h.contentLength < 0 {
			t.Fatalf("framing: chunked %v length %d", h.chunked, h.contentLength)
		}
		r, perr := h.request(context.Background())
		if perr != nil {
			return
		}
		// Written out again, the head parses to the same request.
		var out bytes.Buffer
		out.WriteString(h.method + " " + h.uri + " " + h.proto + "\r\n")
		if h.hasHost {
			out.WriteString("Host: " + h.host + "\r\n")
		}
		for k, vs := range h.header {
			for _, v := range vs {
				out.WriteString(k + ": " + v + "\r\n")
			}
		}
		out.WriteString("\r\n")
		var h2 requestHead
		if perr := parseHead(out.Bytes(), &h2); perr != nil {
			t.Fatalf("re-parsing %q: %v", out.String(), perr)
		}
		if h2.method != h.method || h2.uri != h.uri || h2.host != h.host || h2.contentLength != h.contentLength ||
			h2.closeAfter != h.closeAfter || h2.upgrade != h.upgrade || !maps.EqualFunc(h2.header, h.header, slices.Equal) {
			t.Fatalf("round trip changed the head:\n%+v\n%+v", h, h2)
		}
		if r.Method != h.method || r.RequestURI != h.uri || r.URL == nil {
			t.Fatalf("request %+v from head %+v", r, h)
		}
		if h.contentLength == 0 {
			return
		}
		// The body, through the connection's buffer.
		rest := string(b[end:])
		c := &h1conn{srv: &h1Server{maxHead: 64 << 10}, cs: &connState{}}
		c.in = inbuf{conn: &memConn{r: strings.NewReader(rest), n: step}, buf: make([]byte, 16)}
		body := &reqBody{c: c, req: r, chunked: h.chunked, remain: h.contentLength}
		got, err := io.ReadAll(io.LimitReader(body, 1<<20))
		if !h.chunked {
			want := rest[:min(int64(len(rest)), h.contentLength)]
			if string(got) != want {
				t.Fatalf("fixed body %q, want %q", got, want)
			}
			if int64(len(rest)) < h.contentLength && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("short body: %v", err)
			}
		}
		var pe *protocolError
		if errors.As(err, &pe) && c.cs.protocolErr() == nil {
			t.Fatal("framing error not reported to the connection")
		}
	})
}

// FuzzOriginForm checks parseOriginForm against url.ParseRequestURI:
// every target it takes parses to the same URL there.
func FuzzOriginForm(f *testing.F) {
	for _, s := range []string{
		"/", "/echo?size=1024", "/a?", "/a??", "/a?b?c", "/a/b;c=d@e:f", "/%41", "/a b", "/a#f",
		"//host/p", "/a?x\x01", "/ü", "/a+b,c$&=", "/a!b", "/(x)*'", "*", "http://h/p", "/a?b#c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u := new(url.URL)
		if !parseOriginForm(raw, u) {
			return
		}
		want, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatalf("parseOriginForm(%q) took a target url.ParseRequestURI refuses: %v", raw, err)
		}
		if *u != *want {
			t.Fatalf("parseOriginForm(%q) = %#v, url.ParseRequestURI = %#v", raw, *u, *want)
		}
	})
}
