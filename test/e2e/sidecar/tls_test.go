//go:build linux

package sidecar

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellismesh/trellis/test/framework"
)

const (
	tlsHost = "tls-backend.default.svc.cluster.local"
	tlsPort = 8443 // port "tls", protocol TLS: passed through by both sidecars
)

// tlsNames are the names the TLS backends hold certificates for, by
// version. Only a VirtualService tls route can send a name to its backend:
// the tls-backend service balances over all three.
var tlsNames = map[string]string{"v1": "alpha.tls.test", "v2": "beta.tls.test", "v3": "gamma.tls.test"}

// tlsBackend terminates TLS itself on 0.0.0.0:tlsPort in a reviews
// namespace, with a certificate for one name, and answers one line per
// connection: "<name> sni=<server name> peer=<remote> got=<client's line>".
type tlsBackend struct {
	name  string
	conns atomic.Int64 // completed handshakes
}

func startTLSBackend(t *testing.T, ns *framework.Netns, name string, cert tls.Certificate) *tlsBackend {
	b := &tlsBackend{name: name}
	l := tls.NewListener(ns.Listen(t, "tcp", fmt.Sprintf("0.0.0.0:%d", tlsPort)), &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go b.serve(c.(*tls.Conn))
		}
	}()
	return b
}

func (b *tlsBackend) serve(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	b.conns.Add(1)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	fmt.Fprintf(c, "%s sni=%s peer=%s got=%s\n", b.name, c.ConnectionState().ServerName, c.RemoteAddr(), strings.TrimSpace(line))
}

// vsTLSBySNI routes the tls-backend service's TLS port by SNI: alpha to
// v1, beta to v2 (each holding the certificate for its name).
const vsTLSBySNI = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tls-backend
spec:
  hosts:
  - tls-backend
  - alpha.tls.test
  - beta.tls.test
  tls:
  - match:
    - port: 8443
      sniHosts:
      - alpha.tls.test
    route:
    - destination:
        host: tls-backend
        subset: v1
  - match:
    - port: 8443
      sniHosts:
      - beta.tls.test
    route:
    - destination:
        host: tls-backend
        subset: v2
`

// tlsHello connects from the client namespace to addr with SNI sni,
// verifying the server's certificate for sni against the test CA, and
// returns the backend's answer line.
func (m *mesh) tlsHello(addr, sni string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := m.client.ns.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	c := tls.Client(raw, &tls.Config{ServerName: sni, RootCAs: m.tlsCA.Pool, MinVersion: tls.VersionTLS12})
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := c.HandshakeContext(ctx); err != nil {
		return "", fmt.Errorf("TLS handshake for %s: %w", sni, err)
	}
	if got := c.ConnectionState().PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != sni {
		return "", fmt.Errorf("certificate for %v, want %s", got, sni)
	}
	if _, err := fmt.Fprintf(c, "hello %s\n", sni); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// testTLSPassthroughBySNI: the client sidecar routes TLS it cannot read by
// the ClientHello's SNI (tls_inspector + filter chain match from the
// VirtualService's tls routes) to two backends that terminate TLS
// themselves; the client verifies by certificate (the test CA's, for the
// SNI name) that it reached the right one, and the backend sees the inbound
// sidecar as peer. The connections are addressed to tcp-echo, where nothing
// listens on tlsPort.
func testTLSPassthroughBySNI(t *testing.T, m *mesh) {
	m.cp.WriteFile(t, "tls-virtual-service.yaml", vsTLSBySNI)
	m.client.waitListener(t, fmt.Sprintf("0.0.0.0_%d", tlsPort))
	addr := netip.AddrPortFrom(m.echo.ns.Addr, tlsPort).String()
	want := map[string]string{"alpha.tls.test": "reviews-v1", "beta.tls.test": "reviews-v2"}
	check := func(sni string) error {
		line, err := m.tlsHello(addr, sni)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, want[sni]+" sni="+sni+" peer="+passthroughSrc+":") || !strings.HasSuffix(line, "got=hello "+sni) {
			return fmt.Errorf("SNI %s answered %q, want %s (through the inbound sidecar %s)", sni, line, want[sni], passthroughSrc)
		}
		return nil
	}
	framework.Eventually(t, propagation, func() error {
		for sni := range want {
			if err := check(sni); err != nil {
				return err
			}
		}
		return nil
	})
	v1, v2, v3 := m.tls["v1"].conns.Load(), m.tls["v2"].conns.Load(), m.tls["v3"].conns.Load()
	const n = 25
	for i := range n {
		for _, sni := range []string{"alpha.tls.test", "beta.tls.test"} {
			if err := check(sni); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
	}
	g1, g2, g3 := m.tls["v1"].conns.Load()-v1, m.tls["v2"].conns.Load()-v2, m.tls["v3"].conns.Load()-v3
	t.Logf("%d TLS connections per SNI name through both sidecars: handshakes v1=%d v2=%d v3=%d", n, g1, g2, g3)
	if g1 != n || g2 != n || g3 != 0 {
		t.Errorf("handshakes v1=%d v2=%d v3=%d, want %d, %d, 0", g1, g2, g3, n, n)
	}
}
