//go:build linux

package mtls

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TLS alert descriptions the server may answer a weak offer with.
const (
	alertHandshakeFailure     = 40
	alertProtocolVersion      = 70
	alertInsufficientSecurity = 71
)

// d8 offers old protocol versions and weak cipher suites to the server's
// inbound mTLS listener (SECURITY.md D8), with cert, a valid client
// certificate, so that the offer is the only defect. crypto/tls makes the
// offers it still implements; a hand-written ClientHello makes the ones
// it does not (SSL 3.0, NULL and export suites).
func (m *mesh) d8(t *testing.T, cert tls.Certificate) {
	m.requireStrict(t)
	cases := []struct {
		name    string
		min     uint16
		max     uint16
		ciphers []uint16
		accept  bool
		reason  string // the server's count of the refusal
	}{
		// Controls: the same client, limited to TLS 1.2 and to one strong
		// suite, is served; the refusals are about the offers.
		{name: "TLS 1.2 with ECDHE-ECDSA-AES128-GCM-SHA256", min: tls.VersionTLS12, max: tls.VersionTLS12,
			ciphers: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, accept: true},
		{name: "TLS 1.3", min: tls.VersionTLS13, max: tls.VersionTLS13, accept: true},
		{name: "TLS 1.0", min: tls.VersionTLS10, max: tls.VersionTLS10, reason: "protocol_version"},
		{name: "TLS 1.1", min: tls.VersionTLS11, max: tls.VersionTLS11, reason: "protocol_version"},
		{name: "TLS 1.0 and 1.1", min: tls.VersionTLS10, max: tls.VersionTLS11, reason: "protocol_version"},
		{name: "TLS_RSA_WITH_AES_128_CBC_SHA only", min: tls.VersionTLS12, max: tls.VersionTLS12,
			ciphers: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, reason: "no_shared_cipher"},
		{name: "3DES only", min: tls.VersionTLS12, max: tls.VersionTLS12,
			ciphers: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA}, reason: "no_shared_cipher"},
		{name: "RC4 only", min: tls.VersionTLS12, max: tls.VersionTLS12,
			ciphers: []uint16{tls.TLS_ECDHE_ECDSA_WITH_RC4_128_SHA, tls.TLS_RSA_WITH_RC4_128_SHA}, reason: "no_shared_cipher"},
		{name: "CBC with SHA-1 only", min: tls.VersionTLS12, max: tls.VersionTLS12,
			ciphers: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, reason: "no_shared_cipher"},
		{name: "CBC with SHA-256 only", min: tls.VersionTLS12, max: tls.VersionTLS12,
			ciphers: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, tls.TLS_RSA_WITH_AES_128_CBC_SHA256}, reason: "no_shared_cipher"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := m.server.app.bytes.Load()
			counted := m.handshakeFailures(t, tc.reason)
			code, body, err := m.tlsGetWith(t, cert, func(c *tls.Config) {
				c.MinVersion, c.MaxVersion, c.CipherSuites = tc.min, tc.max, tc.ciphers
			})
			if tc.accept {
				if err != nil || code != 200 {
					t.Fatalf("refused: %d %q %v", code, body, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted: %d %q", code, body)
			}
			// The server answered the offer with an alert: the ClientHello
			// went out and was refused there, not by crypto/tls here.
			if !strings.Contains(err.Error(), "remote error: tls:") {
				t.Fatalf("want the server's alert, got %v", err)
			}
			t.Logf("refused: %v", err)
			if n := m.server.app.bytes.Load() - before; n != 0 {
				t.Fatalf("the app read %d bytes of a refused connection", n)
			}
			m.waitCounted(t, tc.reason, counted)
		})
	}

	alpn := []string{"istio-http/1.1", "istio", "http/1.1"}
	raw := []struct {
		name  string
		hello rawHello
		// want: a ServerHello (control), or one of the alerts (nil: the
		// connection may also just be closed).
		serverHello bool
		alerts      []int
		reason      string
	}{
		// Control: the byte-written hello is well formed; the server
		// answers it.
		{name: "hand-written TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256", serverHello: true, hello: rawHello{
			recordVersion: tls.VersionTLS10, version: tls.VersionTLS12, ecdhe: true, alpn: alpn,
			suites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}},
		{name: "SSL 3.0", alerts: []int{alertProtocolVersion}, reason: "protocol_version", hello: rawHello{
			recordVersion: 0x0300, version: 0x0300, alpn: alpn,
			suites: []uint16{0x000a, 0x0005, 0x002f}}}, // DES-CBC3-SHA, RC4-SHA, AES128-SHA
		{name: "TLS 1.2 NULL suites only", alerts: []int{alertHandshakeFailure, alertInsufficientSecurity}, reason: "no_shared_cipher", hello: rawHello{
			recordVersion: tls.VersionTLS10, version: tls.VersionTLS12, ecdhe: true, alpn: alpn,
			suites: []uint16{0x0001, 0x0002, 0x003b, 0xc006}}}, // NULL-MD5, NULL-SHA, NULL-SHA256, ECDHE-ECDSA-NULL-SHA
		{name: "TLS 1.2 export suites only", alerts: []int{alertHandshakeFailure, alertInsufficientSecurity}, reason: "no_shared_cipher", hello: rawHello{
			recordVersion: tls.VersionTLS10, version: tls.VersionTLS12, alpn: alpn,
			suites: []uint16{0x0003, 0x0006, 0x0008, 0x0014}}}, // EXP-RC4-MD5, EXP-RC2-CBC-MD5, EXP-DES-CBC-SHA, EXP-EDH-RSA-DES-CBC-SHA
		{name: "TLS 1.2 DES and anonymous suites only", alerts: []int{alertHandshakeFailure, alertInsufficientSecurity}, reason: "no_shared_cipher", hello: rawHello{
			recordVersion: tls.VersionTLS10, version: tls.VersionTLS12, ecdhe: true, alpn: alpn,
			suites: []uint16{0x0009, 0x0018, 0x001b, 0xc018}}}, // DES-CBC-SHA, ADH-RC4-MD5, ADH-DES-CBC3-SHA, AECDH-AES128-SHA
	}
	for _, tc := range raw {
		t.Run(tc.name, func(t *testing.T) {
			before := m.server.app.bytes.Load()
			counted := m.handshakeFailures(t, tc.reason)
			reply, err := m.sendHello(tc.hello)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("reply: %v", reply)
			if reply.serverHello != tc.serverHello {
				t.Fatalf("reply %v, want ServerHello %v", reply, tc.serverHello)
			}
			if !tc.serverHello && !containsInt(tc.alerts, reply.alert) {
				t.Fatalf("reply %v, want one of the alerts %v", reply, tc.alerts)
			}
			if n := m.server.app.bytes.Load() - before; n != 0 {
				t.Fatalf("the app read %d bytes", n)
			}
			if !tc.serverHello {
				m.waitCounted(t, tc.reason, counted)
			}
		})
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// tlsGetWith is tlsGet with the client's tls.Config changed by edit.
func (m *mesh) tlsGetWith(t *testing.T, cert tls.Certificate, edit func(*tls.Config)) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := m.outsider.ns.DialContext(ctx, "tcp", netip.AddrPortFrom(m.server.ns.Addr, appPort).String())
	if err != nil {
		return 0, "", err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Only the server's refusal of the client is tested here.
		InsecureSkipVerify: true,
		NextProtos:         []string{"istio-http/1.1", "istio", "http/1.1"},
	}
	if edit != nil {
		edit(cfg)
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return 0, "", fmt.Errorf("handshake: %w", err)
	}
	return get(c, host(m.server))
}
