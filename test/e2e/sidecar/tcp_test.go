//go:build linux

package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// testTCPHalfClose: the client sends 256 KiB and half-closes (FIN, still
// reading); the echo server gets EOF only if both sidecars forward the
// half-close, and its answer written after that EOF ("eof after <n>
// bytes") reaches the client only if both kept the other direction open.
func testTCPHalfClose(t *testing.T, m *mesh) {
	dst := netip.AddrPortFrom(m.echo.ns.Addr, echoPort).String()
	m.eventually(t, func() error {
		_, err := tcpEcho(context.Background(), m.dialer(), dst, "ready")
		return err
	})
	const size = 256 << 10
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	for i := range 3 {
		c, err := m.dialer()("tcp", dst)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		greeting, err := r.ReadString('\n')
		if err != nil || !strings.Contains(greeting, "peer="+passthroughSrc+":") {
			c.Close()
			t.Fatalf("connection %d: greeting %q, %v (want the echo server behind the inbound sidecar %s)", i, greeting, err, passthroughSrc)
		}
		werr := make(chan error, 1)
		go func() {
			_, err := c.Write(payload)
			if err == nil {
				err = c.(*net.TCPConn).CloseWrite()
			}
			werr <- err
		}()
		rest, err := io.ReadAll(r) // until the server's FIN
		c.Close()
		if err := <-werr; err != nil {
			t.Fatalf("connection %d: writing then half-closing: %v", i, err)
		}
		if err != nil {
			t.Fatalf("connection %d: reading after half-close: %v (read %d bytes)", i, err, len(rest))
		}
		echo, trailer := rest[:min(len(rest), size)], string(rest[min(len(rest), size):])
		if !bytes.Equal(echo, payload) {
			t.Fatalf("connection %d: echo of %d bytes differs from the %d sent", i, len(echo), size)
		}
		if want := fmt.Sprintf("eof after %d bytes\n", size); trailer != want {
			t.Fatalf("connection %d: after the echo got %q, want %q (the server's answer to the client's half-close)", i, trailer, want)
		}
	}
	t.Logf("3 connections: %d bytes echoed, client half-close forwarded to the server, its answer after EOF received, then closed", size)
}

// dialer returns a dial function from the client namespace (captured).
func (m *mesh) dialer() func(network, addr string) (net.Conn, error) {
	return func(network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return m.client.ns.DialContext(ctx, network, addr)
	}
}
