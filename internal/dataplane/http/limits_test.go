package http_test

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/anypb"

	hcm "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// statCounter is a StatsSink keeping counts by "prefix stat".
type statCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *statCounter) Count(prefix string, st hcm.Stat) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[prefix+" "+st.String()]++
}

func (s *statCounter) get(st hcm.Stat) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n["lim "+st.String()]
}

// waitGrow polls until st has grown past before, or fails.
func (s *statCounter) waitGrow(t *testing.T, st hcm.Stat, before int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for s.get(st) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("%s not counted (still %d)", st, s.get(st))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// limitsProxy serves a connection manager with short timeouts, the
// underscore rejection, and a "hold" filter that parks requests to /hold
// until release is closed (ignoring their context), counting limits into
// the returned statCounter.
func limitsProxy(t *testing.T) (*proxy, *statCounter, chan struct{}) {
	up := newTestUpstream(t)
	b := newBackend(t, "b")
	up.add("b", b.addr(), false)
	release := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	hold := filter.FactoryFunc(func(string, *anypb.Any) (filter.Filter, error) {
		return wrapFunc(func(next filter.Handler) filter.Handler {
			return filter.HandlerFunc(func(s *filter.Stream) {
				if strings.HasPrefix(s.Request.URL.Path, "/hold") {
					<-release
				}
				next.ServeStream(s)
			})
		}), nil
	})
	h := hcmJSON(t, `{
	  "stat_prefix": "lim",
	  "request_headers_timeout": "0.3s",
	  "stream_idle_timeout": "0.3s",
	  "common_http_protocol_options": {"idle_timeout": "0.3s", "headers_with_underscores_action": "REJECT_REQUEST"},
	  "route_config": {"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "b", "timeout": "0s"}}]}]},
	  "http_filters": [
	    {"name": "hold", "typed_config": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": {}}},
	    {"name": "envoy.filters.http.router", "typed_config": `+routerAny+`}]}`)
	sc := &statCounter{}
	p := serveManager(t, h, hcm.Deps{Upstream: up, Stats: sc, Filters: filter.Registry{"type.googleapis.com/google.protobuf.Struct": hold}})
	return p, sc, release
}

// TestLimitStats triggers each limit of the connection manager and checks
// that it is counted under Envoy's name (issue 6: limits as metrics).
func TestLimitStats(t *testing.T) {
	p, sc, release := limitsProxy(t)
	h1Cases := []struct {
		name string
		raw  string
		stat hcm.Stat
		code int
	}{
		{"400 CL+TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", hcm.StatProtocolError, 400},
		{"431 head too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", hcm.StatProtocolError, 431},
		{"431 header count", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-H: v\r\n", 101) + "\r\n", hcm.StatProtocolError, 431},
		{"400 underscore", "GET / HTTP/1.1\r\nHost: x\r\nX_A: v\r\n\r\n", hcm.StatHTTP1Underscores, 400},
	}
	for _, c := range h1Cases {
		t.Run("http1/"+c.name, func(t *testing.T) {
			before := sc.get(c.stat)
			resp, _, _ := exchange(t, p.addr, c.raw)
			if resp == nil || resp.StatusCode != c.code {
				t.Fatalf("response %v, want %d", resp, c.code)
			}
			sc.waitGrow(t, c.stat, before)
		})
	}
	t.Run("http2/header count", func(t *testing.T) {
		before := sc.get(hcm.StatHeaderOverflow)
		fields := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}}
		for i := range 101 {
			fields = append(fields, [2]string{"x-h" + strconv.Itoa(i), "v"})
		}
		h2 := dialH2(t, p.addr)
		h2.headers(1, fields)
		if status, how := h2.outcome(1); status != 431 {
			t.Fatalf("%d %s, want 431", status, how)
		}
		sc.waitGrow(t, hcm.StatHeaderOverflow, before)
	})
	t.Run("http2/underscore", func(t *testing.T) {
		before := sc.get(hcm.StatHTTP2Underscores)
		h2 := dialH2(t, p.addr)
		h2.headers(1, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}, {"x_a", "v"}})
		if status, how := h2.outcome(1); status != 400 {
			t.Fatalf("%d %s, want 400", status, how)
		}
		sc.waitGrow(t, hcm.StatHTTP2Underscores, before)
	})
	t.Run("http1/request headers timeout", func(t *testing.T) {
		before := sc.get(hcm.StatHeaderTimeout)
		c := dialRaw(t, p.addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
		if err := readToEnd(c); err != nil {
			t.Fatal(err)
		}
		sc.waitGrow(t, hcm.StatHeaderTimeout, before)
	})
	t.Run("http1/idle timeout", func(t *testing.T) {
		before := sc.get(hcm.StatIdleTimeout)
		c := dialRaw(t, p.addr)
		if err := readToEnd(c); err != nil {
			t.Fatal(err)
		}
		sc.waitGrow(t, hcm.StatIdleTimeout, before)
	})
	t.Run("stream idle timeout", func(t *testing.T) {
		before := sc.get(hcm.StatStreamIdleTimeout)
		resp, _, _ := exchange(t, p.addr, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp == nil || (resp.StatusCode != 504 && resp.StatusCode != 408) {
			t.Fatalf("response %v, want 504 or 408", resp)
		}
		sc.waitGrow(t, hcm.StatStreamIdleTimeout, before)
	})
	t.Run("stream idle timeout, stalled body", func(t *testing.T) {
		// SECURITY C7: a request body that stops arriving ends at the
		// stream idle timeout (Envoy's default 5 min; 300 ms here).
		before := sc.get(hcm.StatStreamIdleTimeout)
		start := time.Now()
		resp, _, _ := exchange(t, p.addr, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
		if resp == nil || (resp.StatusCode != 408 && resp.StatusCode != 504) {
			t.Fatalf("response %v, want 408 or 504", resp)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("answered after %v, want about the 300 ms stream idle timeout", d)
		}
		sc.waitGrow(t, hcm.StatStreamIdleTimeout, before)
	})
	t.Run("http2/rapid reset", func(t *testing.T) {
		// 100 handlers parked on /hold; every further stream is reset at
		// once and queues behind them until net/http gives up.
		before := sc.get(hcm.StatPrematureResets)
		h2 := dialH2(t, p.addr)
		for i := range 1000 {
			id := uint32(2*i + 1)
			h2.headers(id, [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/hold/" + strconv.Itoa(i)}})
			if err := h2.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
				break
			}
		}
		sc.waitGrow(t, hcm.StatPrematureResets, before)
		close(release)
	})
}

// TestHTTP2Floods is SECURITY C2 and C4 at the connection manager: each
// flood closes the connection (after a GOAWAY ENHANCE_YOUR_CALM when the
// proxy can still write) and is counted; a well-behaved HTTP/2 client
// moving megabytes both ways trips none of the limits.
func TestHTTP2Floods(t *testing.T) {
	p, sc, _ := limitsProxy(t)
	post := [][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/hold"}}
	floods := []struct {
		name  string
		stat  hcm.Stat
		write func(fr *http2.Framer, i int) error
	}{
		{"empty DATA", hcm.StatEmptyFramesFlood, func(fr *http2.Framer, _ int) error { return fr.WriteData(1, false, nil) }},
		{"padded empty DATA", hcm.StatEmptyFramesFlood, func(fr *http2.Framer, _ int) error {
			return fr.WriteDataPadded(1, false, nil, make([]byte, 10))
		}},
		{"WINDOW_UPDATE", hcm.StatWindowUpdateFramesFlood, func(fr *http2.Framer, _ int) error { return fr.WriteWindowUpdate(0, 1) }},
		{"PRIORITY", hcm.StatPriorityFramesFlood, func(fr *http2.Framer, i int) error {
			return fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: uint8(i)})
		}},
		{"SETTINGS", hcm.StatOutboundControlFlood, func(fr *http2.Framer, _ int) error {
			return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
		}},
		{"PING", hcm.StatOutboundControlFlood, func(fr *http2.Framer, i int) error {
			return fr.WritePing(false, [8]byte{byte(i), byte(i >> 8)})
		}},
		{"CONTINUATION", hcm.StatHeaderOverflow, func(fr *http2.Framer, i int) error {
			return fr.WriteContinuation(1, false, encodeFields([][2]string{{"x-c" + strconv.Itoa(i), strings.Repeat("v", 8<<10)}}))
		}},
	}
	for _, f := range floods {
		t.Run(f.name, func(t *testing.T) {
			before := sc.get(f.stat)
			c := dialRaw(t, p.addr)
			io.WriteString(c, http2.ClientPreface)
			fr := http2.NewFramer(c, c)
			fr.WriteSettings()
			block := encodeFields(post)
			if f.name == "CONTINUATION" {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block})
			} else {
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block, EndHeaders: true})
			}
			// Written without reading the answers; the proxy stops reading
			// (and the writes fail) once it has closed.
			var werr error
			n := 0
			for ; n < 1000000 && werr == nil; n++ {
				werr = f.write(fr, n)
			}
			sc.waitGrow(t, f.stat, before)
			rerr, goaway := readUntilClosed(fr)
			t.Logf("%s: %d frames written (%v); read ended with %v, GOAWAY %v", f.name, n, werr, rerr, goaway)
			if rerr == nil {
				t.Error("connection not closed")
			}
		})
	}
	t.Run("well-behaved client", func(t *testing.T) {
		var before []int
		for _, f := range floods {
			before = append(before, sc.get(f.stat))
		}
		c := client(t, true)
		big := strings.Repeat("x", 1<<20)
		for i := range 5 {
			resp := p.do(t, c, "POST", "x", "/big/"+strconv.Itoa(i), nil, strings.NewReader(big))
			body := readAll(t, resp)
			if resp.StatusCode != 200 || len(body) < 1<<20 {
				t.Fatalf("POST %d: %d, %d bytes back", i, resp.StatusCode, len(body))
			}
		}
		for i, f := range floods {
			if n := sc.get(f.stat); n != before[i] {
				t.Errorf("%s counted for a well-behaved client (%d → %d)", f.stat, before[i], n)
			}
		}
	})
}

// TestStatNames pins the Envoy names the counters are exported under.
func TestStatNames(t *testing.T) {
	var got []string
	for _, s := range hcm.Stats() {
		got = append(got, s.String())
	}
	want := "downstream_cx_protocol_error downstream_rq_header_timeout downstream_cx_idle_timeout " +
		"downstream_rq_idle_timeout downstream_rq_timeout downstream_rq_too_many_premature_resets " +
		"http1.requests_rejected_with_underscores_in_headers http2.requests_rejected_with_underscores_in_headers " +
		"http2.header_overflow http2.inbound_empty_frames_flood http2.inbound_priority_frames_flood " +
		"http2.inbound_window_update_frames_flood http2.outbound_control_flood"
	if strings.Join(got, " ") != want {
		t.Errorf("stat names:\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(waitFor))
	return c
}

// readToEnd reads until the proxy closes the connection; a timeout is an
// error.
func readToEnd(c net.Conn) error {
	_, err := io.Copy(io.Discard, c)
	if isReset(err) {
		err = nil
	}
	return err
}

// readUntilClosed reads frames until the connection ends (nil error: it
// did not end before the deadline) and reports a GOAWAY's code.
func readUntilClosed(fr *http2.Framer) (error, string) {
	goaway := "none"
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return nil, goaway
			}
			return err, goaway
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			goaway = ga.ErrCode.String()
		}
	}
}

func encodeFields(fields [][2]string) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range fields {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return buf.Bytes()
}
