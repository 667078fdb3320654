package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestSlowBodyIsCut: a client that sends a review's headers and then
// trickles its body loses the connection after ReadTimeout, instead of
// holding it (and its buffer) open for as long as it likes.
func TestSlowBodyIsCut(t *testing.T) {
	s := testServer(t)
	s.cfg.Address = "127.0.0.1:0"
	s.cfg.ReadTimeout = 500 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer acancel()
	addr, err := s.Addr(actx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: s.cfg.Certs.cfg.Authority.Roots().Pool(), ServerName: "istiod.istio-system.svc"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "POST /validate HTTP/1.1\r\nHost: istiod\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"request\":"); err != nil {
		t.Fatal(err)
	}
	// One byte every 100ms: always some progress, never the whole body.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 4096)
	for range tick.C {
		if time.Since(start) > 10*time.Second {
			t.Fatal("connection still open after 10s of a trickled body")
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, rerr := c.Read(buf)
		var ne net.Error
		if rerr != nil && !(errors.As(rerr, &ne) && ne.Timeout()) {
			break // the server answered and closed, or reset
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			break
		}
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("cut after %v, before the read timeout", d)
	}
}
