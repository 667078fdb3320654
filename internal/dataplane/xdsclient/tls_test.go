package xdsclient

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock/tlstest"
)

// tlsServer accepts TLS connections that require a client certificate of
// ca and reports each client's leaf serial.
func tlsServer(t *testing.T, ca *tlstest.CA, serving *tls.Certificate) (string, <-chan string) {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{*serving},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		NextProtos:   []string{"h2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	serials := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err == nil {
				serials <- tc.ConnectionState().PeerCertificates[0].SerialNumber.String()
			}
			tc.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String(), serials
}

func TestMeshTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	serving := ca.Issue(t, tlstest.Leaf{DNSNames: []string{"istiod.istio-system.svc"}})
	addr, serials := tlsServer(t, ca, serving)
	first := ca.SPIFFE(t, "cluster.local", "ns1", "a")
	store := tlstest.Mesh(first, ca)

	handshake := func(store secrets.Store, name string) error {
		t.Helper()
		creds, err := MeshTLS(store, name)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := creds.ClientHandshake(ctx, addr, raw)
		if err != nil {
			raw.Close()
			return err
		}
		// TLS 1.3: the server's verdict on the client certificate arrives
		// with the first read.
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if err != nil && !strings.Contains(err.Error(), "EOF") {
			return err
		}
		return nil
	}
	wantSerial := func(c *tls.Certificate) {
		t.Helper()
		select {
		case got := <-serials:
			if got != c.Leaf.SerialNumber.String() {
				t.Fatalf("server saw client certificate %s, want %s", got, c.Leaf.SerialNumber)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("server saw no handshake")
		}
	}

	if err := handshake(store, "istiod.istio-system.svc"); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	wantSerial(first)

	// A renewed certificate is used from the next connection on.
	renewed := ca.SPIFFE(t, "cluster.local", "ns1", "a")
	store.SetCertificate(secrets.WorkloadCertificate, renewed)
	if err := handshake(store, "istiod.istio-system.svc"); err != nil {
		t.Fatalf("handshake after renewal: %v", err)
	}
	wantSerial(renewed)

	refused := []struct {
		name, serverName, want string
		store                  func() secrets.Store
	}{
		{"wrong server name", "evil.example", "evil.example", func() secrets.Store { return store }},
		{"server from another root", "istiod.istio-system.svc", "unknown authority",
			func() secrets.Store { return tlstest.Mesh(first, tlstest.NewCA(t, "other")) }},
		{"no workload certificate yet", "istiod.istio-system.svc", "",
			func() secrets.Store {
				s := tlstest.NewStore()
				s.Expect(secrets.WorkloadCertificate)
				s.SetRoots(secrets.RootCA, ca.Pool())
				return s
			}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			err := handshake(tc.store(), tc.serverName)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	if _, err := MeshTLS(store, ""); err == nil {
		t.Error("MeshTLS without a server name: no error")
	}
}
