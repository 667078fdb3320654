package http_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
)

// TestWebSocket upgrades through the proxy (upgrade_configs websocket, as
// Istio sets it) to an echo server, and refuses upgrades not configured.
func TestWebSocket(t *testing.T) {
	ms := startMesh(t, nil)
	ws := httptest.NewServer(websocket.Server{Handler: func(c *websocket.Conn) { _, _ = io.Copy(c, c) }})
	t.Cleanup(ws.Close)
	ms.up.set(detailsV1, ws.Listener.Addr().String(), false)

	t.Run("echo", func(t *testing.T) {
		conn, err := net.Dial("tcp", ms.proxy.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(waitFor))
		cfg, err := websocket.NewConfig("ws://details/ws", "http://details/")
		if err != nil {
			t.Fatal(err)
		}
		c, err := websocket.NewClient(cfg, conn)
		if err != nil {
			t.Fatalf("handshake through the proxy: %v", err)
		}
		for _, msg := range []string{"hello", "trellis"} {
			if err := websocket.Message.Send(c, msg); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := websocket.Message.Receive(c, &got); err != nil {
				t.Fatal(err)
			}
			if got != msg {
				t.Errorf("echo %q, want %q", got, msg)
			}
		}
		// A large message comes back re-framed by the echo server: read
		// it as a stream.
		big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16)
		if err := websocket.Message.Send(c, big); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(big))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, big) {
			t.Errorf("large echo: %v", err)
		}
		c.Close()
		rec := ms.proxy.rec.wait(t, byPath("/ws"))
		if rec.ResponseCode != http.StatusSwitchingProtocols || rec.BytesSent < 100<<10 || rec.BytesReceived < 100<<10 {
			t.Errorf("record: code %d sent %d received %d", rec.ResponseCode, rec.BytesSent, rec.BytesReceived)
		}
	})

	t.Run("upgrade not configured", func(t *testing.T) {
		raw := "GET /ws-other HTTP/1.1\r\nHost: details\r\nConnection: Upgrade\r\nUpgrade: spdy/3\r\n\r\n"
		resp, _, closed := exchange(t, ms.proxy.addr, raw)
		if resp == nil || resp.StatusCode != http.StatusForbidden || !closed {
			t.Fatalf("response %v closed %v, want 403 and closed", resp, closed)
		}
		rec := ms.proxy.rec.wait(t, byPath("/ws-other"))
		if rec.Details != "upgrade_failed" || rec.Flags != filter.Flags(0) {
			t.Errorf("record details %q flags %v", rec.Details, rec.Flags)
		}
	})
}
