//go:build linux

package sidecar

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// wsPath is the path on which the reviews backends upgrade to WebSocket.
const wsPath = "/ws"

// serveWebSocket greets with "<name> peer=<remote>" and answers every
// message with "<name> echo <message>" until the client closes.
func (b *backend) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	websocket.Server{Handler: func(c *websocket.Conn) {
		defer c.Close()
		if err := websocket.Message.Send(c, fmt.Sprintf("%s peer=%s", b.name, c.Request().RemoteAddr)); err != nil {
			return
		}
		for {
			var msg string
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(c, b.name+" echo "+msg); err != nil {
				return
			}
		}
	}}.ServeHTTP(w, r)
}

// wsDial opens a WebSocket from the client namespace to the reviews
// service (addressed to reviews-v1's IP, Host the service) and reads the
// greeting.
func (m *mesh) wsDial() (*websocket.Conn, string, error) {
	addr := netip.AddrPortFrom(m.reviews["v1"].ns.Addr, reviewsPort).String()
	cfg, err := websocket.NewConfig(fmt.Sprintf("ws://%s:%d%s", reviewsHost, reviewsPort, wsPath), "http://e2e.test/")
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := m.client.ns.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := websocket.NewClient(cfg, raw)
	if err != nil {
		raw.Close()
		return nil, "", fmt.Errorf("WebSocket handshake through the sidecars: %w", err)
	}
	var greeting string
	if err := websocket.Message.Receive(c, &greeting); err != nil {
		c.Close()
		return nil, "", fmt.Errorf("reading the greeting: %w", err)
	}
	return c, greeting, nil
}

// testWebSocketEcho: an HTTP/1.1 Upgrade to WebSocket through both sidecars
// (upgrade_configs websocket on both HTTP connection managers), then 200
// messages each way, pipelined, echoed in order by one backend that sees
// the inbound sidecar as peer.
func testWebSocketEcho(t *testing.T, m *mesh) {
	m.applyVS(t, vsReviewsService)
	var c *websocket.Conn
	var greeting string
	m.eventually(t, func() (err error) {
		c, greeting, err = m.wsDial()
		if err == nil && !strings.Contains(greeting, " peer="+passthroughSrc+":") {
			c.Close()
			err = fmt.Errorf("greeting %q: want the backend behind the inbound sidecar (%s)", greeting, passthroughSrc)
		}
		return err
	})
	defer c.Close()
	name, _, _ := strings.Cut(greeting, " ")
	const n = 200
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			if err := websocket.Message.Send(c, fmt.Sprintf("message %d", i)); err != nil {
				errc <- fmt.Errorf("sending message %d: %w", i, err)
				return
			}
		}
		errc <- nil
	}()
	for i := range n {
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil {
			t.Fatalf("receiving echo %d: %v", i, err)
		}
		if want := fmt.Sprintf("%s echo message %d", name, i); got != want {
			t.Fatalf("echo %d: %q, want %q", i, got, want)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("WebSocket through both sidecars: greeting %q, %d messages echoed in order", greeting, n)
}
