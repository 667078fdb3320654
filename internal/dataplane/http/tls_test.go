package http_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// selfSigned returns a server certificate for "details".
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "details"},
		DNSNames:     []string{"details"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSConnections hands *tls.Conn connections to Serve, as the TLS
// transport will: ALPN h2 is served by net/http's HTTP/2 over TLS, ALPN
// http/1.1 through the HTTP/1 guard; both route with scheme https.
func TestTLSConnections(t *testing.T) {
	ms := startMesh(t, nil)
	m := ms.proxy.m
	cert := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
				defer tc.Close()
				if err := tc.HandshakeContext(ctx); err != nil {
					return
				}
				local := addrPort(c.LocalAddr())
				m.Serve(ctx, &listener.Conn{Conn: tc, Listener: "tls", Source: addrPort(c.RemoteAddr()), Local: local, Destination: local, Transport: listener.TransportTLS, SNI: "details"})
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); cancel(); wg.Wait() })

	for _, tc := range []struct {
		alpn      string
		wantProto string
	}{{"h2", "HTTP/2.0"}, {"http/1.1", "HTTP/1.1"}} {
		t.Run(tc.alpn, func(t *testing.T) {
			tr := &http.Transport{
				TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tc.alpn}},
				ForceAttemptHTTP2: tc.alpn == "h2",
			}
			t.Cleanup(tr.CloseIdleConnections)
			c := &http.Client{Transport: tr}
			for i := range 3 {
				req, _ := http.NewRequest("GET", "https://"+ln.Addr().String()+"/tls", nil)
				req.Host = "details"
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				s := decodeSeen(t, resp)
				if resp.Proto != tc.wantProto {
					t.Errorf("request %d: protocol %s, want %s", i, resp.Proto, tc.wantProto)
				}
				if got := http.Header(s.Header).Get("X-Forwarded-Proto"); got != "https" {
					t.Errorf("x-forwarded-proto %q, want https", got)
				}
			}
		})
	}
}
