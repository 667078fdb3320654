package http

import (
	"bufio"
	"errors"
	"io"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// oneResponse sends raw on a fresh connection and reads one response. It
// reports whether the server closed the connection after it and how many
// writes the server made.
func oneResponse(t *testing.T, handler nethttp.HandlerFunc, method, raw string) (*nethttp.Response, string, bool, int64) {
	t.Helper()
	h := startH1(t, 0, handler, nil)
	if _, err := io.WriteString(h.client, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(h.client)
	var resp *nethttp.Response
	for {
		var err error
		resp, err = nethttp.ReadResponse(br, &nethttp.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 200 {
			break
		}
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		// A body cut short: the server must have closed the connection.
		return resp, "", true, h.server.writes.Load()
	}
	_ = h.client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.ReadByte()
	closed := err != nil && isConnReset(err)
	return resp, string(b), closed, h.server.writes.Load()
}

// TestH1ResponseFraming checks the writer frames responses as net/http
// would, and coalesces a head and a small body into one write.
func TestH1ResponseFraming(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	big := strings.Repeat("0123456789abcdef", 100<<10/16)
	cases := []struct {
		name    string
		method  string
		raw     string
		handler nethttp.HandlerFunc
		cl      int64 // -1: none
		chunked bool
		body    string
		closed  bool
		writes  int64 // 0: not checked
		trailer string
		header  map[string]string
	}{
		{name: "small body gets a Content-Length in one write", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) { _, _ = io.WriteString(w, "hello") },
			cl:      5, body: "hello", writes: 1},
		{name: "declared Content-Length", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Content-Length", "5")
				w.WriteHeader(201)
				_, _ = io.WriteString(w, "hel")
				_, _ = io.WriteString(w, "lo")
			},
			cl: 5, body: "hello", writes: 1},
		{name: "empty response", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {},
			cl:      0, body: "", writes: 1},
		{name: "large body is chunked", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) { _, _ = io.WriteString(w, big) },
			cl:      -1, chunked: true, body: big},
		{name: "large body with Content-Length", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Content-Length", "102400")
				_, _ = io.WriteString(w, big)
			},
			cl: int64(len(big)), body: big},
		{name: "flush makes it chunked", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				_, _ = io.WriteString(w, "a")
				w.(nethttp.Flusher).Flush()
				_, _ = io.WriteString(w, "b")
			},
			cl: -1, chunked: true, body: "ab"},
		{name: "HEAD gets the length written", method: "HEAD", raw: "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) { _, _ = io.WriteString(w, "hello") },
			cl:      5, body: ""},
		{name: "204 has no body", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Content-Length", "3")
				w.WriteHeader(204)
				if _, err := io.WriteString(w, "abc"); !errors.Is(err, nethttp.ErrBodyNotAllowed) {
					t.Errorf("write to a 204: %v", err)
				}
			},
			cl: 0, body: ""},
		{name: "304 drops Content-Type", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Etag", `"x"`)
				w.WriteHeader(304)
			},
			cl: 0, body: "", header: map[string]string{"Content-Type": "", "Etag": `"x"`}},
		{name: "HTTP/1.0 streamed body closes", raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				_, _ = io.WriteString(w, "a")
				w.(nethttp.Flusher).Flush()
				_, _ = io.WriteString(w, "b")
			},
			cl: -1, body: "ab", closed: true},
		{name: "HTTP/1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) { _, _ = io.WriteString(w, "ab") },
			cl:      2, body: "ab", header: map[string]string{"Connection": "keep-alive"}},
		{name: "declared trailer", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Trailer", "Grpc-Status")
				_, _ = io.WriteString(w, "x")
				w.Header().Set("Grpc-Status", "0")
			},
			cl: -1, chunked: true, body: "x", trailer: "Grpc-Status: 0"},
		{name: "TrailerPrefix trailer", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set(nethttp.TrailerPrefix+"X-T", "early")
				_, _ = io.WriteString(w, "x")
				w.Header().Set(nethttp.TrailerPrefix+"X-T", "late")
			},
			cl: -1, chunked: true, body: "x", trailer: "X-T: late"},
		{name: "short body closes", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Content-Length", "10")
				_, _ = io.WriteString(w, "abc")
			},
			cl: 10, body: "", closed: true},
		{name: "handler Connection close", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Connection", "close")
				_, _ = io.WriteString(w, "x")
			},
			cl: 1, body: "x", closed: true},
		{name: "header values cannot inject lines", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("X-A", "a\r\nX-Injected: 1")
			},
			cl: 0, body: "", header: map[string]string{"X-A": "a  X-Injected: 1", "X-Injected": ""}},
		{name: "informational then final", raw: get,
			handler: func(w nethttp.ResponseWriter, r *nethttp.Request) {
				w.Header().Set("Link", "</a>")
				w.WriteHeader(103)
				_, _ = io.WriteString(w, "x")
			},
			cl: 1, body: "x", header: map[string]string{"Link": "</a>"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			resp, body, closed, writes := oneResponse(t, tc.handler, method, tc.raw)
			if tc.name == "short body closes" {
				// The body is cut by the close: the client sees an error.
				if !closed {
					t.Error("connection kept")
				}
				return
			}
			if resp.ContentLength != tc.cl {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, tc.cl)
			}
			if chunked := len(resp.TransferEncoding) > 0; chunked != tc.chunked {
				t.Errorf("chunked %v, want %v", chunked, tc.chunked)
			}
			if body != tc.body {
				t.Errorf("body %d bytes, want %d", len(body), len(tc.body))
			}
			if closed != tc.closed {
				t.Errorf("closed %v, want %v", closed, tc.closed)
			}
			if tc.writes > 0 && writes != tc.writes {
				t.Errorf("%d writes, want %d", writes, tc.writes)
			}
			if tc.trailer != "" {
				k, v, _ := strings.Cut(tc.trailer, ": ")
				if got := resp.Trailer.Get(k); got != v {
					t.Errorf("trailer %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if resp.Header.Get("Date") == "" {
				t.Error("no Date header")
			}
		})
	}
}

// TestH1ExpectContinue checks 100-continue: sent when the handler first
// reads the body; not sent, and the connection closed, when the handler
// answers without reading it.
func TestH1ExpectContinue(t *testing.T) {
	const head = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
	t.Run("read", func(t *testing.T) {
		h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		}, nil)
		_, _ = io.WriteString(h.client, head)
		br := bufio.NewReader(h.client)
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("first response %v %v, want 100", resp, err)
		}
		_, _ = io.WriteString(h.client, "hello")
		resp, err = nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || string(b) != "hello" {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	})
	t.Run("not read", func(t *testing.T) {
		resp, _, closed, _ := oneResponse(t, func(w nethttp.ResponseWriter, r *nethttp.Request) {
			w.WriteHeader(403)
		}, "POST", head)
		if resp.StatusCode != 403 || !closed {
			t.Fatalf("status %d closed %v, want 403 and closed", resp.StatusCode, closed)
		}
	})
}

// TestH1UnreadBodyDrained checks that a body the handler did not read is
// drained, so that the next request on the connection is served.
func TestH1UnreadBodyDrained(t *testing.T) {
	e := &echoHandler{}
	h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if r.RequestURI == "/ignore" {
			w.WriteHeader(404)
			return
		}
		e.ServeHTTP(w, r)
	}, nil)
	_, _ = io.WriteString(h.client, "POST /ignore HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+
		"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	resps, _, _ := h.responses(t, "GET")
	if !equalInts(statuses(resps), []int{404, 200}) {
		t.Fatalf("statuses %v", statuses(resps))
	}
}

// TestH1CompleteResponseSentBeforeReturn checks that a response whose
// declared length is all written goes out while the handler is still
// running (what the handler does after it — telemetry, timers — is off
// the client's path), in one write with its head, and that it waits for
// the handler's return when it could still change: no Content-Length
// (the framing is decided at the return), or a request body not yet read
// (the head may have to say Connection: close).
func TestH1CompleteResponseSentBeforeReturn(t *testing.T) {
	cases := []struct {
		name, req string
		cl        bool
		early     bool
	}{
		{"content-length", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true, true},
		{"no content-length", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", false, false},
		{"request body read", "POST /read HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", true, true},
		{"request body unread", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			returned := make(chan struct{})
			h := startH1(t, 0, func(w nethttp.ResponseWriter, r *nethttp.Request) {
				defer close(returned)
				if r.URL.Path == "/read" {
					_, _ = io.ReadAll(r.Body)
				}
				if tc.cl {
					w.Header().Set("Content-Length", "4")
				}
				_, _ = io.WriteString(w, "done")
				<-release
			}, nil)
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			t.Cleanup(unblock) // before the harness's: a failed check must not leave the handler blocked
			if _, err := io.WriteString(h.client, tc.req); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 1)
			go func() {
				resp, err := nethttp.ReadResponse(bufio.NewReader(h.client), nil)
				if err != nil {
					got <- "error: " + err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				got <- string(b)
			}()
			received := false
			select {
			case b := <-got:
				received = true
				if !tc.early {
					t.Fatalf("response %q arrived before the handler returned", b)
				}
				if b != "done" {
					t.Fatalf("body %q, want done", b)
				}
				if n := h.server.writes.Load(); n != 1 {
					t.Fatalf("%d writes, want head and body in one", n)
				}
			case <-time.After(300 * time.Millisecond):
				if tc.early {
					t.Fatal("complete response not sent while the handler runs")
				}
			}
			unblock()
			<-returned
			if !received {
				if b := <-got; b != "done" {
					t.Fatalf("body %q after the handler returned, want done", b)
				}
			}
		})
	}
}
