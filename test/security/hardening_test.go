//go:build linux

package security

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/trellismesh/trellis/test/framework"
)

// TestHardening runs SECURITY.md sections B and C end to end: each case
// through the real sidecar's inbound listener to nginx, Apache httpd and
// the Go echo server, with the backends' access logs as the witness that
// a refused (or smuggled) request never reached them. Subtests are
// TestHardening/<case>/<http1|http2>/<backend>; the floods and slow
// clients run once per protocol against the Go backend, with a
// well-behaved client checked after (and, for slowloris, during) each.
func TestHardening(t *testing.T) {
	w := newWorld(t)
	m := startMeshWith(t, w, meshOptions{maxConns: hardeningMaxConns}, denyPolicy)
	protoErrors := m.metric(t, "envoy_http_downstream_cx_protocol_error")
	for _, c := range smugglingCases() {
		t.Run(c.id+"/http1", func(t *testing.T) {
			for _, b := range m.backends {
				t.Run(b.name, func(t *testing.T) { m.smuggle(t, b, c) })
			}
		})
	}
	if n := m.metric(t, "envoy_http_downstream_cx_protocol_error"); n-protoErrors < float64(len(smugglingCases())-2) {
		t.Errorf("envoy_http_downstream_cx_protocol_error grew by %v over %d refused heads, want one per head refused by the codec", n-protoErrors, len(smugglingCases()))
	}
	t.Run("B5_H2Malformed/http2", func(t *testing.T) {
		for _, b := range m.backends {
			t.Run(b.name, func(t *testing.T) { m.h2Malformed(t, b) })
		}
	})
	t.Run("C5_HeaderLimits", func(t *testing.T) { m.headerLimits(t) })
	goB := m.backends[2]
	t.Run("C1_RapidReset/http2/go", func(t *testing.T) { m.rapidReset(t, goB) })
	t.Run("C2_ContinuationFlood/http2/go", func(t *testing.T) { m.continuationFlood(t, goB) })
	t.Run("C3_HpackBomb/http2/go", func(t *testing.T) { m.hpackBomb(t, goB) })
	t.Run("C4_ControlFloods/http2/go", func(t *testing.T) { m.controlFloods(t, goB) })
	t.Run("C6_Slowloris/http1/go", func(t *testing.T) { m.slowloris(t, goB) })
	t.Run("C6_TLSNoClientHello", func(t *testing.T) { m.tlsNoClientHello(t, goB) })
	t.Run("C7_SlowBody/http1/go", func(t *testing.T) { m.slowBody(t, goB) })
	t.Run("C7_SlowReader/http1/go", func(t *testing.T) { m.slowReader(t, goB) })
	t.Run("C8_ConnectionFlood", func(t *testing.T) { m.connectionFlood(t, goB) })
	m.waitPolicy(t, "/public", 200)
	m.checkLogs(t)
}

// smugglingCase is one B2/B3/B4/B6 head (and body) that must be refused;
// a second request is pipelined after it and must never be routed.
type smugglingCase struct {
	id, head, body string
	codes          []int
	// midBody: the framing error is in the body, after the head was
	// forwarded (the proxy streams, as Envoy does): the backend may see
	// the first request with a truncated body and answer it; the
	// smuggled request must still never be routed and the connection
	// must close.
	midBody bool
}

// smugglingCases are the HTTP/1 framing and header attacks of SECURITY.md
// B2, B3, B4 and B6. Heads have no final CRLF; "{case}" is replaced by the
// request's x-case line.
func smugglingCases() []smugglingCase {
	const host = "Host: secure\r\n"
	return []smugglingCase{
		{"B2_CLTE", "POST /public HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", []int{400}, false},
		{"B2_TECL", "POST /public HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 35\r\n", "0\r\n\r\n", []int{400}, false},
		{"B3_TEChunkedIdentity", "POST /public HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n", []int{400, 501}, false},
		{"B3_TESpaceBeforeColon", "POST /public HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n", "0\r\n\r\n", []int{400}, false},
		{"B3_TEObsFold", "POST /public HTTP/1.1\r\n" + host + "Transfer-Encoding:\r\n chunked\r\n", "0\r\n\r\n", []int{400}, false},
		{"B3_ObsFold", "GET /public HTTP/1.1\r\n" + host + "X-A: b\r\n\tc\r\n", "", []int{400}, false},
		{"B3_TwoTE", "POST /public HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", []int{400, 501}, false},
		{"B3_TEOnHTTP10", "POST /public HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", []int{400}, false},
		{"B3_BadChunkSize", "POST /public HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n", "ZZ\r\nabc\r\n0\r\n\r\n", []int{400}, true},
		{"B3_ChunkBareLF", "POST /public HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n", "3\nabc\r\n0\r\n\r\n", []int{400}, true},
		{"B3_DuplicateCL", "POST /public HTTP/1.1\r\n" + host + "Content-Length: 3\r\nContent-Length: 4\r\n", "abcd", []int{400}, false},
		{"B4_CRInValue", "GET /public HTTP/1.1\r\n" + host + "X-A: b\rc\r\n", "", []int{400}, false},
		{"B4_LFInValue", "GET /public HTTP/1.1\r\n" + host + "X-A: b\nGET /admin HTTP/1.1\r\n", "", []int{400}, false},
		{"B4_NULInValue", "GET /public HTTP/1.1\r\n" + host + "X-A: b\x00c\r\n", "", []int{400}, false},
		{"B4_SpaceInName", "GET /public HTTP/1.1\r\n" + host + "X A: b\r\n", "", []int{400}, false},
		{"B6_NoHost", "GET /public HTTP/1.1\r\n", "", []int{400}, false},
		{"B6_EmptyHost", "GET /public HTTP/1.1\r\nHost: \r\n", "", []int{400}, false},
		{"B6_TwoHosts", "GET /public HTTP/1.1\r\nHost: secure\r\nHost: other\r\n", "", []int{400}, false},
	}
}

// smuggle sends the case's request followed by a pipelined GET /admin,
// each tagged with its own x-case: the answer is one of the case's codes,
// the connection closes, and neither request reaches the backend.
func (m *mesh) smuggle(t *testing.T, b *backend, c smugglingCase) {
	m.seq++
	id := strconv.Itoa(m.seq)
	inner := "s" + id // the smuggled request's id, unique too
	raw := c.head + "x-case: " + id + "\r\n\r\n" + c.body +
		"GET /admin HTTP/1.1\r\nHost: secure\r\nx-case: " + inner + "\r\n\r\n"
	r := h1(t, b.src, m.inbound, raw)
	ok := c.midBody && r.status != 0 // whatever the backend answered
	for _, code := range c.codes {
		ok = ok || r.status == code
	}
	if !ok {
		t.Errorf("%q: %v, want one of %v", raw, r, c.codes)
	}
	if !r.closed {
		t.Errorf("%q: connection left open after %v", raw, r)
	}
	if strings.Contains(r.body, m.marker) {
		t.Errorf("%q: the marker came back", raw)
	}
	ids := []string{id, inner}
	if c.midBody {
		ids = ids[1:]
	}
	for _, x := range ids {
		if seen := saw(b, x); len(seen) > 0 {
			t.Errorf("%q: %s saw request %s: %q", raw, b.name, x, seen)
		}
		m.pendingCheck = append(m.pendingCheck, pending{b: b, id: x, what: c.id + " " + x})
	}
}

// h2Malformed sends the B5 header blocks: each is reset (or 400) and
// never becomes an upstream request.
func (m *mesh) h2Malformed(t *testing.T, b *backend) {
	raw := func(fields ...[2]string) [][2]string { return fields }
	pub := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "secure"}, {":path", "/public"}}
	cases := map[string][][2]string{
		"connection":              append(raw(pub...), [2]string{"connection", "close"}),
		"transfer-encoding":       append(raw(pub...), [2]string{"transfer-encoding", "chunked"}),
		"keep-alive":              append(raw(pub...), [2]string{"keep-alive", "timeout=5"}),
		"upper-case name":         append(raw(pub...), [2]string{"X-Upper", "1"}),
		"pseudo after regular":    {{":method", "GET"}, {":scheme", "http"}, {"x-a", "1"}, {":authority", "secure"}, {":path", "/public"}},
		"duplicate :path":         append(raw(pub...), [2]string{":path", "/admin"}),
		"unknown pseudo":          append(raw(pub...), [2]string{":foo", "bar"}),
		"te other than trailers":  append(raw(pub...), [2]string{"te", "gzip"}),
		"CRLF in value":           append(raw(pub...), [2]string{"x-a", "b\r\nx-b: c"}),
		"space in name":           append(raw(pub...), [2]string{"x a", "b"}),
		"no :path":                {{":method", "GET"}, {":scheme", "http"}, {":authority", "secure"}},
		"response pseudo :status": append(raw(pub...), [2]string{":status", "200"}),
	}
	for name, fields := range cases {
		m.seq++
		id := strconv.Itoa(m.seq)
		r := h2Fields(t, b.src, m.inbound, append(fields, [2]string{"x-case", id}))
		if r.status != 0 && r.status != 400 {
			t.Errorf("%s: %v, want a stream reset or 400", name, r)
		}
		if strings.Contains(r.body, m.marker) {
			t.Errorf("%s: the marker came back", name)
		}
		if seen := saw(b, id); len(seen) > 0 {
			t.Errorf("%s: %s saw the request: %q", name, b.name, seen)
		}
		m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: "B5 " + name})
	}
}

// headerLimits is C5: 101 headers and one 70 KiB header get 431 over
// HTTP/1 (and 431 or a reset over HTTP/2), never reach the backend, and
// the header-count refusals are counted in istio_requests_total.
func (m *mesh) headerLimits(t *testing.T) {
	many := make([][2]string, 101)
	for i := range many {
		many[i] = [2]string{fmt.Sprintf("x-h%d", i), "v"}
	}
	big := [][2]string{{"x-big", strings.Repeat("a", 70<<10)}}
	before := m.metric(t, "istio_requests_total", `response_code="431"`)
	protoErrors := m.metric(t, "envoy_http_downstream_cx_protocol_error")
	counted := 0
	for _, proto := range protocols {
		for _, b := range m.backends {
			t.Run(proto+"/"+b.name, func(t *testing.T) {
				for _, c := range []struct {
					name string
					h    [][2]string
				}{{"101 headers", many}, {"70 KiB header", big}} {
					m.seq++
					id := strconv.Itoa(m.seq)
					req := get("/public")
					req.headers = append(append([][2]string{}, c.h...), [2]string{"x-case", id})
					var r result
					if proto == "http1" {
						r = h1(t, b.src, m.inbound, req.h1Raw())
						if r.status != 431 {
							t.Errorf("%s: %v, want 431", c.name, r)
						}
					} else {
						r = h2(t, b.src, m.inbound, req)
						if r.status != 431 && r.status != 0 {
							t.Errorf("%s: %v, want 431 or a reset", c.name, r)
						}
					}
					if c.name == "101 headers" && r.status == 431 {
						counted++
					}
					if seen := saw(b, id); len(seen) > 0 {
						t.Errorf("%s: %s saw the request: %q", c.name, b.name, seen)
					}
					m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: "C5 " + c.name})
				}
			})
		}
	}
	if n := m.metric(t, "envoy_http_downstream_cx_protocol_error"); n-protoErrors < float64(2*len(m.backends)) {
		t.Errorf("envoy_http_downstream_cx_protocol_error grew by %v, want at least %d (the HTTP/1 431s)", n-protoErrors, 2*len(m.backends))
	}
	// A request is recorded after its response has left.
	framework.Eventually(t, 5*time.Second, func() error {
		if after := m.metric(t, "istio_requests_total", `response_code="431"`); after-before < float64(counted) {
			return fmt.Errorf("istio_requests_total{response_code=431} grew by %v, want at least %d (the header-count refusals)", after-before, counted)
		}
		return nil
	})
}

// rapidReset is C1: HEADERS then RST_STREAM in a loop on one connection.
// The proxy closes the connection or keeps its handlers bounded: the
// sidecar's heap stays bounded and a well-behaved client is served
// throughout and after.
func (m *mesh) rapidReset(t *testing.T, b *backend) {
	heap0 := heapInUse()
	stop := m.wellBehaved(t, b)
	c, fr, enc := h2Open(t, b.src, m.inbound)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	closed := make(chan error, 1)
	go func() { closed <- drain(fr) }()
	const streams = 20000
	sent := 0
	var werr error
	for i := range streams {
		id := uint32(2*i + 1)
		block := enc([][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "secure"}, {":path", "/public"}})
		if werr = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); werr != nil {
			break
		}
		if werr = fr.WriteRSTStream(id, http2.ErrCodeCancel); werr != nil {
			break
		}
		sent++
	}
	var rerr error
	select {
	case rerr = <-closed:
	case <-time.After(5 * time.Second):
	}
	t.Logf("rapid reset: %d of %d streams sent (write: %v; read: %v)", sent, streams, werr, rerr)
	if served, failed := stop(); failed > 0 || served == 0 {
		t.Errorf("well-behaved client during the flood: %d served, %d failed", served, failed)
	}
	m.checkHeap(t, heap0, "rapid reset")
	m.servesAfter(t, b)
}

// continuationFlood is C2: HEADERS without END_HEADERS followed by
// CONTINUATION frames that never end; the proxy closes the connection
// once the header bytes pass its limit, long before the flood ends.
func (m *mesh) continuationFlood(t *testing.T, b *backend) {
	heap0 := heapInUse()
	c, fr, enc := h2Open(t, b.src, m.inbound)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	closed := make(chan error, 1)
	go func() { closed <- drain(fr) }()
	block := enc([][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "secure"}, {":path", "/public"}})
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	var fill bytes.Buffer
	e := hpack.NewEncoder(&fill)
	for i := 0; fill.Len() < 15<<10; i++ {
		_ = e.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-c%d", i), Value: strings.Repeat("v", 100)})
	}
	const limit = 64 << 20 // 64 MiB of header block if nobody stops it
	sent := 0
	var err error
	for sent < limit {
		if err = fr.WriteContinuation(1, false, fill.Bytes()); err != nil {
			break
		}
		sent += fill.Len()
	}
	if err == nil {
		t.Errorf("CONTINUATION flood: %d MiB accepted without the connection closing", sent>>20)
	} else {
		t.Logf("CONTINUATION flood: connection closed after %d KiB (%v)", sent>>10, err)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Error("CONTINUATION flood: the proxy did not close the connection")
	}
	m.checkHeap(t, heap0, "CONTINUATION flood")
	m.servesAfter(t, b)
}

// controlFloods is C4: PING, SETTINGS, empty DATA and WINDOW_UPDATE
// frames written without reading the answers; the proxy closes the
// connection at Envoy's limits (outbound control frames waiting, empty
// frames in a row, WINDOW_UPDATEs per DATA frame sent), counts each in
// its envoy_http2_* counter, and serves a concurrent client throughout.
func (m *mesh) controlFloods(t *testing.T, b *backend) {
	floods := []struct {
		name   string
		metric string // the counter the close is counted in
		write  func(fr *http2.Framer, i int) error
	}{
		{"PING", "envoy_http2_outbound_control_flood", func(fr *http2.Framer, i int) error {
			return fr.WritePing(false, [8]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		}},
		{"SETTINGS", "envoy_http2_outbound_control_flood", func(fr *http2.Framer, _ int) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
		}},
		{"empty DATA", "envoy_http2_inbound_empty_frames_flood", func(fr *http2.Framer, _ int) error { return fr.WriteData(1, false, nil) }},
		{"WINDOW_UPDATE", "envoy_http2_inbound_window_update_frames_flood", func(fr *http2.Framer, _ int) error { return fr.WriteWindowUpdate(0, 1) }},
	}
	for _, f := range floods {
		t.Run(strings.ReplaceAll(f.name, " ", "_"), func(t *testing.T) {
			heap0 := heapInUse()
			counted := m.metric(t, f.metric)
			stop := m.wellBehaved(t, b)
			c, fr, enc := h2Open(t, b.src, m.inbound)
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			// An open stream for the DATA flood (a POST whose body never ends).
			block := enc([][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "secure"}, {":path", "/public"}})
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true}); err != nil {
				t.Fatal(err)
			}
			// The client never reads: answers (PING ACKs, SETTINGS ACKs)
			// pile up on the proxy's side. Frames go out in 64 KiB writes.
			bw := bufio.NewWriterSize(c, 64<<10)
			bfr := http2.NewFramer(bw, c)
			const frames = 1000000
			n := 0
			var err error
			for ; n < frames; n++ {
				if err = f.write(bfr, n); err != nil {
					break
				}
			}
			if err == nil {
				err = bw.Flush()
			}
			t.Logf("%s flood: %d of %d frames written (%v)", f.name, n, frames, err)
			if err == nil {
				// Written into socket buffers; the proxy must have closed
				// (a read sees the end, after whatever was queued).
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				rerr := drain(fr)
				t.Logf("%s flood: read ended with %v", f.name, rerr)
				if rerr == nil || isTimeout(rerr) {
					t.Errorf("%s flood: connection still open (%v)", f.name, rerr)
				}
			} else if n == frames {
				t.Errorf("%s flood: all %d frames accepted", f.name, frames)
			}
			if got := m.metric(t, f.metric); got <= counted {
				t.Errorf("%s flood: %s did not grow (%v)", f.name, f.metric, got)
			}
			checkWellBehaved(t, f.name+" flood", stop)
			m.checkHeap(t, heap0, f.name+" flood")
			m.servesAfter(t, b)
		})
	}
}

// slowloris is C6: a head sent one byte per second is closed at the
// request headers timeout (10 s, the Trellis default), with no response
// or a 408, while another client is served meanwhile.
func (m *mesh) slowloris(t *testing.T, b *backend) {
	timeouts := m.metric(t, "envoy_http_downstream_rq_header_timeout")
	stop := m.wellBehaved(t, b)
	c := dial(t, b.src, m.inbound)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	head := "GET /public HTTP/1.1\r\nHost: secure\r\nx-slow: " + strings.Repeat("a", 100)
	var err error
	for i := 0; i < len(head) && err == nil; i++ {
		_, err = c.Write([]byte{head[i]})
		time.Sleep(time.Second)
		if time.Since(start) > 25*time.Second {
			break
		}
	}
	if err == nil {
		// The writes may still succeed after the proxy closed (the
		// kernel answers with RST later): the read tells.
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		var one [512]byte
		n, rerr := c.Read(one[:])
		if rerr == nil && !strings.HasPrefix(string(one[:n]), "HTTP/1.1 408") {
			t.Errorf("slowloris: got %q, want the connection closed", one[:n])
		} else if isTimeout(rerr) {
			t.Errorf("slowloris: connection open after %v", time.Since(start).Round(time.Second))
		}
	}
	took := time.Since(start)
	t.Logf("slowloris: closed after %v (%v)", took.Round(100*time.Millisecond), err)
	if took < 9*time.Second || took > 20*time.Second {
		t.Errorf("slowloris: closed after %v, want about the 10 s request headers timeout", took)
	}
	if served, failed := stop(); failed > 0 || served == 0 {
		t.Errorf("well-behaved client during slowloris: %d served, %d failed", served, failed)
	}
	if n := m.metric(t, "envoy_http_downstream_rq_header_timeout"); n <= timeouts {
		t.Errorf("envoy_http_downstream_rq_header_timeout did not grow (%v)", n)
	}
}

// wellBehaved runs GET /public in a loop on fresh connections until the
// returned stop is called, which reports how many were served (200) and
// how many failed.
func (m *mesh) wellBehaved(t *testing.T, b *backend) (stop func() (served, failed int)) {
	var ok, bad atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if r := m.tryH1(b, get("/public")); r.status == 200 {
				ok.Add(1)
			} else {
				bad.Add(1)
				t.Logf("well-behaved client: %v", r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() (int, int) {
		close(done)
		wg.Wait()
		return int(ok.Load()), int(bad.Load())
	}
}

// servesAfter checks that a new client is served over both protocols.
func (m *mesh) servesAfter(t *testing.T, b *backend) {
	t.Helper()
	if r := h1(t, b.src, m.inbound, get("/public").h1Raw()); r.status != 200 {
		t.Errorf("after the attack, HTTP/1: %v, want 200", r)
	}
	if r := h2(t, b.src, m.inbound, get("/public")); r.status != 200 {
		t.Errorf("after the attack, HTTP/2: %v, want 200", r)
	}
}

// heapBound is how much the process heap (the sidecar, the control plane
// and the Go backend share it) may grow across one flood.
const heapBound = 64 << 20

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func (m *mesh) checkHeap(t *testing.T, before uint64, what string) {
	t.Helper()
	after := heapInUse()
	t.Logf("%s: heap in use %d KiB → %d KiB", what, before>>10, after>>10)
	if after > before+heapBound {
		t.Errorf("%s: heap grew by %d MiB (bound %d MiB)", what, (after-before)>>20, heapBound>>20)
	}
}

// metric sums the samples of name on the sidecar's /stats/prometheus
// whose label set contains every one of labels.
func (m *mesh) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + m.admin + "/stats/prometheus")
	if err != nil {
		t.Fatalf("scraping the sidecar: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		for _, lb := range labels {
			if !strings.Contains(l, lb) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", l, err)
		}
		sum += v
	}
	return sum
}

// h2Open opens a prior-knowledge h2c connection and returns it with its
// framer and an HPACK encoder for header blocks.
func h2Open(t *testing.T, src, to string) (net.Conn, *http2.Framer, func([][2]string) []byte) {
	t.Helper()
	c := dial(t, src, to)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	e := hpack.NewEncoder(&buf)
	return c, fr, func(fields [][2]string) []byte {
		buf.Reset()
		for _, f := range fields {
			_ = e.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		return append([]byte(nil), buf.Bytes()...)
	}
}

// h2Fields sends one header block as given (any names, any order) on a
// new h2c connection and reads the stream's outcome.
func h2Fields(t *testing.T, src, to string, fields [][2]string) result {
	t.Helper()
	c, fr, enc := h2Open(t, src, to)
	defer c.Close()
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(fields), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	return readStream(fr)
}

// readStream reads the frames of stream 1 until its response ends, the
// stream is reset or the connection goes away, and says which.
func readStream(fr *http2.Framer) result {
	dec := hpack.NewDecoder(4096, nil)
	var out result
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			out.how = "connection closed: " + err.Error()
			return out
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			out.how = "RST_STREAM " + f.ErrCode.String()
			return out
		case *http2.GoAwayFrame:
			if out.status == 0 {
				out.how = "GOAWAY " + f.ErrCode.String()
				return out
			}
		case *http2.HeadersFrame:
			hfs, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				out.how = err.Error()
				return out
			}
			for _, hf := range hfs {
				if hf.Name == ":status" {
					out.status, _ = strconv.Atoi(hf.Value)
					out.how = "response"
				}
			}
			if f.StreamEnded() {
				return out
			}
		case *http2.DataFrame:
			out.body += string(f.Data())
			if f.StreamEnded() {
				return out
			}
		}
	}
}

// drain reads frames until the connection ends and returns why.
func drain(fr *http2.Framer) error {
	for {
		if _, err := fr.ReadFrame(); err != nil {
			return err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
