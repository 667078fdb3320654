//go:build linux

package security

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestHeaderTrust runs SECURITY.md B1, B7, B8 and B9 end to end: each
// case through the real sidecar's inbound listener (plaintext, no peer
// certificate: the downstream is not an authenticated mesh peer) to nginx,
// Apache httpd and the Go echo server, with each server's own header log
// (backend.headerLog) as the witness of what the proxy forwarded, and its
// access log as the witness that a request never arrived. Subtests are
// TestHeaderTrust/<case>/<http1|http2>/<backend>.
func TestHeaderTrust(t *testing.T) {
	w := newWorld(t)
	m := startMesh(t, w, nil, denyPolicy)
	for _, proto := range protocols {
		t.Run("B1_MeshInternalHeaders/"+proto, func(t *testing.T) {
			for _, b := range m.backends {
				t.Run(b.name, func(t *testing.T) { m.meshInternal(t, b, proto) })
			}
		})
	}
	t.Run("B7_H2CUpgrade/http1", func(t *testing.T) {
		for _, b := range m.backends {
			t.Run(b.name, func(t *testing.T) { m.h2cUpgrade(t, b) })
		}
	})
	t.Run("B8_UpgradeThenPipelined/http1", func(t *testing.T) {
		for _, b := range m.backends {
			t.Run(b.name, func(t *testing.T) { m.upgradeThenPipelined(t, b) })
		}
	})
	for _, proto := range protocols {
		t.Run("B9_HopByHopProxyHeaders/"+proto, func(t *testing.T) {
			for _, b := range m.backends {
				t.Run(b.name, func(t *testing.T) { m.hopByHop(t, b, proto) })
			}
		})
	}
	m.checkLogs(t)
}

// nextID returns a new request id (the x-case header).
func (m *mesh) nextID() string {
	m.seq++
	return strconv.Itoa(m.seq)
}

// meshInternalHeaders are what a client claims in B1: a peer certificate
// (x-forwarded-client-cert, as an upstream sidecar would append it under
// Istio's APPEND_FORWARD), Envoy's internal and metadata-exchange headers
// and Trellis's own. Every value carries tag, so a value that reached a
// backend is recognisable. Over HTTP/1 the names are sent in mixed case.
func meshInternalHeaders(tag string, h1 bool) [][2]string {
	hs := [][2]string{
		{"X-Forwarded-Client-Cert", "By=spiffe://cluster.local/ns/default/sa/secure;URI=spiffe://cluster.local/ns/" + tag + "/sa/admin"},
		{"X-ENVOY-ORIGINAL-PATH", "/admin/" + tag},
		{"x-Envoy-Decorator-Operation", "admin." + tag + ":80/*"},
		{"X-Envoy-Peer-Metadata", "ChgKDkFQUF9DT05UQUlORVJTEgYaBGFkbWlu" + tag},
		{"X-Envoy-Peer-Metadata-Id", "sidecar~10.0.0.9~admin-" + tag + ".default~default.svc.cluster.local"},
		{"X-Envoy-Internal", "true-" + tag},
		{"X-Envoy-Expected-Rq-Timeout-Ms", "1" + tag},
		{"X-Envoy-Upstream-Rq-Timeout-Ms", "2" + tag},
		{"X-Envoy-Retry-On", "5xx," + tag},
		{"X-Envoy-Attempt-Count", "9" + tag},
		{"X-Trellis-Identity", "spiffe://cluster.local/ns/default/sa/" + tag},
		{"X-Trellis-Peer", "admin-" + tag},
	}
	if h1 {
		// A second x-forwarded-client-cert field, as a chain of proxies
		// would send.
		return append(hs, [2]string{"x-forwarded-client-cert", "By=spiffe://x/" + tag + ";URI=spiffe://y/" + tag})
	}
	for i := range hs {
		hs[i][0] = strings.ToLower(hs[i][0])
	}
	return hs
}

// meshInternal is B1: a public request carrying every mesh-internal
// header is served, and the backend sees none of the client's values:
// x-forwarded-client-cert is removed (Envoy removes it from a connection
// that is not mutual TLS in every mode but ALWAYS_FORWARD_ONLY; Istio's
// inbound sidecar runs APPEND_FORWARD), the x-envoy-* and x-trellis-*
// headers are stripped or overwritten by the proxy's own.
func (m *mesh) meshInternal(t *testing.T, b *backend, proto string) {
	id := m.nextID()
	tag := "b1c" + id
	req := get("/public")
	req.headers = append(meshInternalHeaders(tag, proto == "http1"), [2]string{"x-case", id})
	r := m.send(t, b, proto, req)
	if r.status != 200 {
		t.Fatalf("%v, want 200 (the request is public; the headers are stripped, not refused)", r)
	}
	got, ok := headersSeen(b, id)
	if !ok {
		t.Fatalf("%s never logged request %s", b.name, id)
	}
	if got["x-forwarded-proto"] != "http" {
		// The witness itself: a header log that shows nothing proves nothing.
		t.Fatalf("%s's header log shows x-forwarded-proto %q, want the proxy's http: %v", b.name, got["x-forwarded-proto"], got)
	}
	if v := got["x-forwarded-client-cert"]; v != "-" {
		t.Errorf("x-forwarded-client-cert reached %s from a plaintext client: %q", b.name, v)
	}
	for _, h := range req.headers {
		name := strings.ToLower(h[0])
		if name == "x-case" {
			continue
		}
		if v := got[name]; strings.Contains(v, tag) {
			t.Errorf("%s reached %s with the client's value: %q", name, b.name, v)
		}
	}
}

// send sends req over proto (http1: one request, Connection: close;
// http2: prior-knowledge h2c) from b's client address.
func (m *mesh) send(t *testing.T, b *backend, proto string, req request) result {
	t.Helper()
	if proto == "http1" {
		return h1(t, b.src, m.inbound, req.h1Raw())
	}
	return h2(t, b.src, m.inbound, req)
}

// h2cUpgrade is B7: an HTTP/1.1 request asking to upgrade to h2c on the
// plaintext listener is never answered 101; it is served as HTTP/1.1 (or
// refused), the backend never sees Upgrade, HTTP2-Settings or a
// Connection header naming them, and a second request on the same
// connection is still HTTP/1.1.
func (m *mesh) h2cUpgrade(t *testing.T, b *backend) {
	for _, c := range []struct{ name, head string }{
		{"canonical", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"},
		{"case and order", "connection: http2-settings, upgrade\r\nupgrade: H2C\r\nhttp2-settings: AAMAAABkAAQAAP__\r\n"},
		{"POST with a body", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nContent-Length: 5\r\n"},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			id := m.nextID()
			method, body := "GET", ""
			if strings.Contains(c.head, "Content-Length") {
				method, body = "POST", "hello"
			}
			raw := method + " /public HTTP/1.1\r\nHost: secure\r\n" + c.head + "x-case: " + id + "\r\n\r\n" + body
			conn := dial(t, b.src, m.inbound)
			defer conn.Close()
			if _, err := io.WriteString(conn, raw); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				// Refused by closing: acceptable, if nothing was forwarded.
				m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: "B7 " + c.name})
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusSwitchingProtocols || resp.ProtoMajor != 1 {
				t.Fatalf("%q: %s %s, want no protocol switch", raw, resp.Proto, resp.Status)
			}
			if v := resp.Header.Get("Upgrade"); strings.Contains(strings.ToLower(v), "h2c") {
				t.Errorf("the response offers Upgrade: %q", v)
			}
			if resp.StatusCode != 200 {
				// Refused: the backend must never see it.
				if seen := saw(b, id); len(seen) > 0 {
					t.Errorf("refused with %d but %s saw the request: %q", resp.StatusCode, b.name, seen)
				}
				m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: "B7 " + c.name})
				return
			}
			got, ok := headersSeen(b, id)
			if !ok {
				t.Fatalf("served 200 but %s never logged request %s", b.name, id)
			}
			for _, k := range []string{"upgrade", "http2-settings"} {
				if got[k] != "-" {
					t.Errorf("%s saw %s: %q", b.name, k, got[k])
				}
			}
			if v := strings.ToLower(got["connection"]); strings.Contains(v, "upgrade") || strings.Contains(v, "http2-settings") {
				t.Errorf("%s saw Connection: %q", b.name, got["connection"])
			}
			if resp.Close {
				return
			}
			// The connection still speaks HTTP/1.1.
			id2 := m.nextID()
			if _, err := io.WriteString(conn, "GET /public HTTP/1.1\r\nHost: secure\r\nx-case: "+id2+"\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatalf("second request: %v", err)
			}
			resp2, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("second request on the connection: %v", err)
			}
			resp2.Body.Close()
			if resp2.StatusCode != 200 || resp2.ProtoMajor != 1 {
				t.Errorf("second request on the connection: %s %s, want HTTP/1.1 200", resp2.Proto, resp2.Status)
			}
		})
	}
}

// websocketHead is a WebSocket upgrade request for path (no final CRLF).
func websocketHead(path, id string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: secure\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nx-case: " + id + "\r\n"
}

// upgradeThenPipelined is B8: a WebSocket upgrade that every backend
// answers 200 (none of them speaks WebSocket), followed on the same
// client connection by a second request, pipelined behind the first or
// sent once the 200 has arrived. The upstream's 200 is relayed and the
// connection closed; the second request (to a public path, so a request
// routed or tunnelled to the backend would be served and logged) never
// reaches the backend.
func (m *mesh) upgradeThenPipelined(t *testing.T, b *backend) {
	t.Run("pipelined", func(t *testing.T) {
		id := m.nextID()
		inner := "p" + id
		raw := websocketHead("/public", id) + "\r\n" +
			"GET /public HTTP/1.1\r\nHost: secure\r\nx-case: " + inner + "\r\n\r\n"
		r := h1(t, b.src, m.inbound, raw)
		if r.status != 200 {
			t.Errorf("%v, want the upstream's 200", r)
		}
		if !r.closed {
			t.Errorf("connection left open after %v", r)
		}
		m.upgradeReached(t, b, id)
		if seen := saw(b, inner); len(seen) > 0 {
			t.Errorf("%s saw the pipelined request: %q", b.name, seen)
		}
		m.pendingCheck = append(m.pendingCheck, pending{b: b, id: inner, what: "B8 pipelined"})
	})
	t.Run("after_the_answer", func(t *testing.T) {
		id := m.nextID()
		inner := "a" + id
		conn := dial(t, b.src, m.inbound)
		defer conn.Close()
		if _, err := io.WriteString(conn, websocketHead("/public", id)+"\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to the upgrade: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s, want the upstream's 200", resp.Status)
		}
		m.upgradeReached(t, b, id)
		// The write may succeed (the close is not seen yet); nothing may
		// answer it and nothing may reach the backend.
		_, _ = io.WriteString(conn, "GET /public HTTP/1.1\r\nHost: secure\r\nx-case: "+inner+"\r\n\r\n")
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if resp2, err := http.ReadResponse(br, nil); err == nil {
			resp2.Body.Close()
			t.Errorf("the second request was answered: %s", resp2.Status)
		} else if isTimeout(err) {
			t.Errorf("connection left open after the upgrade was answered 200")
		}
		if seen := saw(b, inner); len(seen) > 0 {
			t.Errorf("%s saw the second request: %q", b.name, seen)
		}
		m.pendingCheck = append(m.pendingCheck, pending{b: b, id: inner, what: "B8 after the answer"})
	})
}

// upgradeReached checks that the upgrade request id reached b as one
// (Upgrade: websocket): the 200 is the backend's, not the proxy's.
func (m *mesh) upgradeReached(t *testing.T, b *backend, id string) {
	t.Helper()
	got, ok := headersSeen(b, id)
	if !ok {
		t.Fatalf("%s never logged the upgrade request %s", b.name, id)
	}
	if !strings.EqualFold(got["upgrade"], "websocket") {
		t.Errorf("%s saw Upgrade %q, want websocket", b.name, got["upgrade"])
	}
}

// hopByHop is B9: a client nominating the proxy's own headers in
// Connection (so that a proxy removing every nominated header would drop
// them) does not stop them reaching the backend: x-forwarded-for as the
// client sent it (Istio's inbound listener does not use the remote
// address, so it is passed on, not appended to), x-forwarded-proto and
// x-request-id as the proxy sets them, and the client's Connection header
// is not forwarded. HTTP/2 has no Connection header: a request carrying
// one is malformed (RFC 9113 8.2.2) and never forwarded, and the proxy's
// headers reach the backend on a well-formed one.
func (m *mesh) hopByHop(t *testing.T, b *backend, proto string) {
	type variant struct {
		name    string
		headers [][2]string
		xff     string // the x-forwarded-for the backend must see ("" none)
	}
	var variants []variant
	if proto == "http1" {
		variants = []variant{
			{"one Connection header", [][2]string{
				{"Connection", "close, x-forwarded-for, x-forwarded-proto, x-request-id, x-envoy-attempt-count"},
				{"X-Forwarded-For", "192.0.2.1"},
			}, "192.0.2.1"},
			{"split and mixed case", [][2]string{
				{"Connection", "X-Request-Id"},
				{"connection", "close,X-FORWARDED-PROTO ,  x-Forwarded-For"},
				{"x-forwarded-for", "198.51.100.7"},
			}, "198.51.100.7"},
			{"proxy headers only", [][2]string{
				{"Connection", "close, x-forwarded-proto, x-request-id, via, forwarded"},
			}, ""},
		}
	} else {
		id := m.nextID()
		fields := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "secure"}, {":path", "/public"},
			{"connection", "close, x-forwarded-for, x-request-id"}, {"x-forwarded-for", "192.0.2.1"}, {"x-case", id}}
		if r := h2Fields(t, b.src, m.inbound, fields); r.status != 0 && (r.status < 400 || r.status > 499) {
			t.Errorf("h2 request with a connection header: %v, want a reset or 400", r)
		}
		m.pendingCheck = append(m.pendingCheck, pending{b: b, id: id, what: "B9 h2 connection header"})
		variants = []variant{{"well-formed", [][2]string{{"x-forwarded-for", "192.0.2.1"}}, "192.0.2.1"}}
	}
	for _, v := range variants {
		t.Run(strings.ReplaceAll(v.name, " ", "_"), func(t *testing.T) {
			id := m.nextID()
			req := get("/public")
			req.headers = append(append([][2]string{}, v.headers...), [2]string{"x-case", id})
			r := m.send(t, b, proto, req)
			if r.status != 200 {
				t.Fatalf("%v, want 200", r)
			}
			got, ok := headersSeen(b, id)
			if !ok {
				t.Fatalf("%s never logged request %s", b.name, id)
			}
			if got["x-forwarded-proto"] != "http" {
				t.Errorf("%s saw x-forwarded-proto %q, want http", b.name, got["x-forwarded-proto"])
			}
			if rid := got["x-request-id"]; len(rid) != 36 || strings.Count(rid, "-") != 4 {
				t.Errorf("%s saw x-request-id %q, want the proxy's UUID", b.name, rid)
			}
			if v.xff != "" && !strings.Contains(got["x-forwarded-for"], v.xff) {
				t.Errorf("%s saw x-forwarded-for %q, want it to carry %s", b.name, got["x-forwarded-for"], v.xff)
			}
			conn := strings.ToLower(got["connection"])
			for _, k := range []string{"x-forwarded", "x-request-id", "x-envoy", "via", "forwarded"} {
				if strings.Contains(conn, k) {
					t.Errorf("%s saw the client's Connection header: %q", b.name, got["connection"])
					break
				}
			}
		})
	}
}
