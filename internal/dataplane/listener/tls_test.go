package listener_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock/tlstest"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

// shopYAML is one workload (namespace shop, service account shop) with an
// HTTP port and a TCP port; tests append a PeerAuthentication.
const shopYAML = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: shop}
spec:
  hosts: [shop.shop.svc.cluster.local]
  ports:
  - {number: 80, targetPort: 8080, name: http, protocol: HTTP}
  - {number: 9000, name: tcp-db, protocol: TCP}
  resolution: STATIC
  workloadSelector: {labels: {app: shop}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: shop-1, namespace: shop}
spec: {address: 10.0.3.1, labels: {app: shop, version: v1}, serviceAccount: shop}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
`

// shopInbound is the generator's virtualInbound listener for the shop
// workload's sidecar, which has the identity of service account shop.
func shopInbound(t *testing.T, yaml string) *listenerv3.Listener {
	t.Helper()
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, yaml))
	p := gentest.Proxy("10.0.3.1", "shop", map[string]string{"app": "shop", "version": "v1"})
	p.ServiceAccount = "shop"
	for _, l := range genlistener.Build(snap.Scope(p)) {
		if l.GetName() == "virtualInbound" {
			return l
		}
	}
	t.Fatal("no virtualInbound listener generated")
	return nil
}

// reporter is a terminal network filter for every filter type: it writes
// one line describing what the listener handed over, then echoes lines.
type reporter struct{ kind string }

func (r reporter) Build(*listenerv3.Filter) (listener.ConnHandler, error) { return r, nil }

func (r reporter) Serve(_ context.Context, c *listener.Conn) {
	_, isTLS := c.Conn.(*tls.Conn)
	alpn := ""
	if c.TLS != nil {
		alpn = c.TLS.NegotiatedProtocol
	}
	fmt.Fprintf(c, "%s chain=%s tls=%t mtls=%t peer=%s alpn=%s\n", r.kind, c.Chain, isTLS, c.MutualTLS, c.PeerIdentity, alpn)
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprint(c, "echo "+line)
	}
}

// tlsFailures is a listener.Metrics that also counts TLS failures.
type tlsFailures struct {
	mu      sync.Mutex
	reasons []string
}

func (*tlsFailures) Overflow(string)             {}
func (*tlsFailures) FilterClosed(string, string) {}
func (*tlsFailures) NoFilterChain(string)        {}
func (f *tlsFailures) TLSHandshakeFailed(_, reason string) {
	f.mu.Lock()
	f.reasons = append(f.reasons, reason)
	f.mu.Unlock()
}

func (f *tlsFailures) wait(t *testing.T, reason string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, r := range f.reasons {
			if r == reason {
				f.mu.Unlock()
				return
			}
		}
		got := append([]string(nil), f.reasons...)
		f.mu.Unlock()
		if time.Now().Add(10 * time.Millisecond).After(deadline) {
			t.Fatalf("no TLS failure %q counted; got %v", reason, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// inboundEnv runs the generator's virtualInbound listener of shop under
// mode, bound to 127.0.0.1, with store as the secret source.
func inboundEnv(t *testing.T, mode string, store *tlstest.Store) (string, *tlsFailures) {
	t.Helper()
	yaml := shopYAML + "spec: {mtls: {mode: " + mode + "}}\n"
	l := rebind(t, shopInbound(t, yaml))
	metrics := &tlsFailures{}
	m, err := listener.New(listener.Config{
		Filters:     listener.Registry{tcp.TypeURL: reporter{"tcp"}, hcmTypeURL: reporter{"http"}},
		OriginalDst: func(*net.TCPConn) (netip.AddrPort, error) { return netip.AddrPort{}, errors.New("no capture in tests") },
		Secrets:     store,
		Metrics:     metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update([]*listenerv3.Listener{l}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	a, ok := m.Addr("virtualInbound")
	if !ok {
		t.Fatal("virtualInbound is not bound")
	}
	return a.String(), metrics
}

// meshClient dials addr with TLS as a client sidecar does.
func meshClient(t *testing.T, addr string, cert *tls.Certificate, ca *tlstest.CA, alpn ...string) (*tls.Conn, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), NextProtos: alpn, InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// firstLine reads the reporter's line; an error means the server closed.
func firstLine(c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(waitFor))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

func TestInboundStrictTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	server := ca.SPIFFE(t, "cluster.local", "shop", "shop")
	client := ca.SPIFFE(t, "cluster.local", "web", "frontend")
	addr, metrics := inboundEnv(t, "STRICT", tlstest.Mesh(server, ca))

	t.Run("mesh client, HTTP ALPN", func(t *testing.T) {
		c, err := meshClient(t, addr, client, ca, "istio-http/1.1", "istio", "http/1.1")
		if err != nil {
			t.Fatal(err)
		}
		got, err := firstLine(c)
		if err != nil {
			t.Fatal(err)
		}
		want := "http chain=virtualInbound-catchall-http tls=true mtls=true peer=spiffe://cluster.local/ns/web/sa/frontend alpn=http/1.1"
		if got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
	t.Run("mesh client, TCP ALPN", func(t *testing.T) {
		c, err := meshClient(t, addr, client, ca, "istio-peer-exchange", "istio")
		if err != nil {
			t.Fatal(err)
		}
		got, err := firstLine(c)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, "tcp chain=virtualInbound tls=true mtls=true peer=spiffe://cluster.local/ns/web/sa/frontend") {
			t.Errorf("got %q", got)
		}
	})
	t.Run("plaintext is closed before the application sees a byte", func(t *testing.T) {
		c := dial(t, "", addr)
		fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
		expectClosed(t, c)
	})
	t.Run("TLS without a client certificate", func(t *testing.T) {
		c, err := meshClient(t, addr, nil, ca, "istio-peer-exchange", "istio")
		if err == nil {
			_, err = firstLine(c) // TLS 1.3: the server's refusal comes after the client's handshake
		}
		if err == nil {
			t.Fatal("served a client without a certificate")
		}
		metrics.wait(t, "no_client_certificate")
	})
	t.Run("certificate from another root", func(t *testing.T) {
		other := tlstest.NewCA(t, "other")
		c, err := meshClient(t, addr, other.SPIFFE(t, "cluster.local", "web", "frontend"), ca, "istio-peer-exchange", "istio")
		if err == nil {
			_, err = firstLine(c)
		}
		if err == nil {
			t.Fatal("served a client of another root")
		}
		metrics.wait(t, "unknown_ca")
	})
	t.Run("certificate of another trust domain", func(t *testing.T) {
		c, err := meshClient(t, addr, ca.SPIFFE(t, "evil.example", "web", "frontend"), ca, "istio-peer-exchange", "istio")
		if err == nil {
			_, err = firstLine(c)
		}
		if err == nil {
			t.Fatal("served a client of another trust domain")
		}
		metrics.wait(t, "san_mismatch")
	})
	t.Run("TLS 1.1", func(t *testing.T) {
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, Certificates: []tls.Certificate{*client}, NextProtos: []string{"istio"}}
		if c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr, cfg); err == nil {
			c.Close()
			t.Fatal("TLS 1.1 accepted")
		}
		metrics.wait(t, "protocol_version")
	})
}

func TestInboundPermissiveTLSAndPlaintext(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	server := ca.SPIFFE(t, "cluster.local", "shop", "shop")
	client := ca.SPIFFE(t, "cluster.local", "web", "frontend")
	addr, _ := inboundEnv(t, "PERMISSIVE", tlstest.Mesh(server, ca))

	c, err := meshClient(t, addr, client, ca, "istio-http/1.1", "istio", "http/1.1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := firstLine(c)
	if err != nil || !strings.HasPrefix(got, "http chain=virtualInbound-catchall-http tls=true mtls=true peer=spiffe://cluster.local/ns/web/sa/frontend") {
		t.Errorf("mTLS on the permissive port: %q, %v", got, err)
	}

	p := dial(t, "", addr)
	fmt.Fprint(p, "GET / HTTP/1.1\r\n")
	got, err = firstLine(p)
	if err != nil || got != "http chain=virtualInbound-catchall-http tls=false mtls=false peer= alpn=" {
		t.Errorf("plaintext on the permissive port: %q, %v", got, err)
	}
}

// TestInboundCertificateRotation: a new certificate in the store is served
// to the next connection, while an established one stays up.
func TestInboundCertificateRotation(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	first := ca.SPIFFE(t, "cluster.local", "shop", "shop")
	client := ca.SPIFFE(t, "cluster.local", "web", "frontend")
	store := tlstest.Mesh(first, ca)
	addr, _ := inboundEnv(t, "STRICT", store)

	old, err := meshClient(t, addr, client, ca, "istio-peer-exchange", "istio")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(old)
	old.SetDeadline(time.Now().Add(waitFor))
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Fatalf("first connection got serial %v", got)
	}

	second := ca.SPIFFE(t, "cluster.local", "shop", "shop")
	store.SetCertificate("default", second)
	fresh, err := meshClient(t, addr, client, ca, "istio-peer-exchange", "istio")
	if err != nil {
		t.Fatal(err)
	}
	if got := fresh.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(second.Leaf.SerialNumber) != 0 {
		t.Errorf("connection after rotation got serial %v, want %v", got, second.Leaf.SerialNumber)
	}
	if got := lineExchange(t, br, old, "still there"); got != "echo still there" {
		t.Errorf("established connection after rotation: %q", got)
	}
}

// TestInboundWaitsForIdentity: a handshake arriving before the workload
// certificate waits for it (SDS initial_fetch_timeout 0s).
func TestInboundWaitsForIdentity(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	store := tlstest.NewStore()
	store.Expect("default")
	store.SetRoots("ROOTCA", ca.Pool())
	addr, _ := inboundEnv(t, "STRICT", store)
	client := ca.SPIFFE(t, "cluster.local", "web", "frontend")
	res := make(chan error, 1)
	go func() {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr,
			&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{*client}, NextProtos: []string{"istio"}})
		if err == nil {
			_, err = firstLine(c)
			c.Close()
		}
		res <- err
	}()
	select {
	case err := <-res:
		t.Fatalf("handshake ended before the certificate was there: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	store.SetCertificate("default", ca.SPIFFE(t, "cluster.local", "shop", "shop"))
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

func TestTLSListenerNeedsSecretStore(t *testing.T) {
	l := rebind(t, shopInbound(t, shopYAML+"spec: {mtls: {mode: STRICT}}\n"))
	m, err := listener.New(listener.Config{Filters: listener.Registry{tcp.TypeURL: reporter{"tcp"}, hcmTypeURL: reporter{"http"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Update([]*listenerv3.Listener{l})
	if err == nil || !strings.Contains(err.Error(), "no secret store") {
		t.Fatalf("Update without a secret store: %v", err)
	}
}
