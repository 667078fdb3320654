package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func serial(t *testing.T, m *Manager) string {
	t.Helper()
	c, err := m.Certificate()
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	return c.Leaf.SerialNumber.String()
}

// checkCert verifies the served certificate as a peer would: the chain
// verifies against the CA's roots and the only URI SAN is the identity.
func checkCert(t *testing.T, e *caEnv, c *tls.Certificate) {
	t.Helper()
	if len(c.Leaf.URIs) != 1 || c.Leaf.URIs[0].String() != wantID {
		t.Fatalf("leaf URIs %v, want [%s]", c.Leaf.URIs, wantID)
	}
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(ic)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: e.auth.Roots().Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("served chain does not verify against the CA: %v", err)
	}
	if _, err := tls.X509KeyPair(pemChain(c), pemKey(t, c)); err != nil {
		t.Fatalf("served key does not match the leaf: %v", err)
	}
}

func TestBootstrapThenRenewWithCertificate(t *testing.T) {
	e := newCA(t)
	// Long enough that a renewal finishes before the certificate expires
	// on a loaded machine (the token is gone after the first one).
	m, c := e.run(t, 4*time.Second)
	if !m.Ready() {
		t.Fatal("not ready after Wait")
	}
	first, err := m.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	checkCert(t, e, first)
	if got := c.issued.Load(); got != 1 {
		t.Errorf("issued = %d, want 1", got)
	}
	if c.expiry.Load() != first.Leaf.NotAfter.Unix() {
		t.Errorf("expiry gauge %d, want %d", c.expiry.Load(), first.Leaf.NotAfter.Unix())
	}
	// Revoke the bootstrap token: from now on only the certificate proves
	// the identity.
	if err := os.Remove(e.tokenFile); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "two renewals", func() bool { return c.renewed.Load() >= 2 })
	second, err := m.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	checkCert(t, e, second)
	if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Error("renewal kept the serial")
	}
	if first.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(second.Leaf.PublicKey) {
		t.Error("renewal kept the key; each certificate gets a fresh key")
	}
	if got := c.issued.Load(); got != 1 {
		t.Errorf("issued = %d after renewals, want 1", got)
	}
	if c.failed.Load() != 0 {
		t.Errorf("%d failed requests, want none", c.failed.Load())
	}
}

func TestCADownKeepsCertificateThenRecovers(t *testing.T) {
	e := newCA(t)
	m, c := e.run(t, 3*time.Second)
	old := serial(t, m)
	e.stop()
	eventually(t, 10*time.Second, "failed renewals", func() bool { return c.failed.Load() >= 3 })
	if c.renewed.Load() != 0 {
		t.Fatal("renewed while the CA was down")
	}
	if got := serial(t, m); got != old {
		t.Fatalf("served serial %s, want the old %s while the CA is down", got, old)
	}
	// Left alone, the certificate expires: it is no longer served.
	eventually(t, 10*time.Second, "expiry", func() bool { return !m.Ready() })
	if _, err := m.Certificate(); !errors.Is(err, secrets.ErrNotReady) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Certificate after expiry: %v, want ErrNotReady (expired)", err)
	}
	// The CA comes back: with no valid certificate, the token proves the
	// identity again.
	e.restart()
	eventually(t, 10*time.Second, "recovery", func() bool { return m.Ready() })
	if got := serial(t, m); got == old {
		t.Fatal("recovered with the old serial")
	}
	cert, _ := m.Certificate()
	checkCert(t, e, cert)
}

func TestRootRotation(t *testing.T) {
	e := newCA(t)
	m, c := e.run(t, 2*time.Second)
	old := e.auth.Issuer()
	if got := m.RootCerts(); len(got) != 1 || !got[0].Equal(old.Root) {
		t.Fatalf("roots %d, want the CA's root", len(got))
	}
	next, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	hasRoots := func(want ...*x509.Certificate) func() bool {
		return func() bool {
			got := m.RootCerts()
			if len(got) != len(want) {
				return false
			}
			for i := range want {
				if !got[i].Equal(want[i]) {
					return false
				}
			}
			return true
		}
	}
	// Stage: the new root is distributed (root-cert.pem) and trusted.
	if err := e.auth.SetIssuer(&ca.Issuer{Cert: old.Cert, Key: old.Key, Chain: old.Chain, Root: old.Root, Trusted: ca.NewBundle(old.Root, next.Root)}); err != nil {
		t.Fatal(err)
	}
	e.writeRoots(old.Root, next.Root)
	eventually(t, 5*time.Second, "both roots trusted", hasRoots(old.Root, next.Root))
	// Promote: the CA issues under the new root, the old stays trusted.
	if err := e.auth.SetIssuer(&ca.Issuer{Cert: next.Cert, Key: next.Key, Root: next.Root, Trusted: ca.NewBundle(next.Root, old.Root)}); err != nil {
		t.Fatal(err)
	}
	e.writeRoots(next.Root, old.Root)
	eventually(t, 10*time.Second, "a certificate under the new root", func() bool {
		cert, err := m.Certificate()
		return err == nil && cert.Leaf.CheckSignatureFrom(next.Root) == nil
	})
	eventually(t, 5*time.Second, "new root first, old still trusted", hasRoots(next.Root, old.Root))
	pool, err := m.Roots()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*x509.Certificate{old.Root, next.Root} {
		if _, err := r.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Errorf("root %s not in the pool: %v", r.Subject, err)
		}
	}
	// Retire: the old root is dropped everywhere.
	if err := e.auth.SetIssuer(&ca.Issuer{Cert: next.Cert, Key: next.Key, Root: next.Root, Trusted: ca.NewBundle(next.Root)}); err != nil {
		t.Fatal(err)
	}
	e.writeRoots(next.Root)
	eventually(t, 5*time.Second, "only the new root", hasRoots(next.Root))
	before := c.renewed.Load()
	eventually(t, 10*time.Second, "renewal after retirement", func() bool { return c.renewed.Load() > before })
	cert, _ := m.Certificate()
	checkCert(t, e, cert)
}

// TestRetiredRootDroppedBeforeRenewal: a proxy whose certificate is not
// due for renewal stops trusting the CA's root as soon as the root file
// no longer lists it (an operator retiring a root), instead of keeping it
// until its next renewal.
func TestRetiredRootDroppedBeforeRenewal(t *testing.T) {
	e := newCA(t)
	m, c := e.run(t, time.Hour)
	old := e.auth.Issuer()
	next, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.writeRoots(next.Root)
	eventually(t, 5*time.Second, "only the root the file lists", func() bool {
		got := m.RootCerts()
		return len(got) == 1 && got[0].Equal(next.Root)
	})
	pool, err := m.Roots()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Root.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Error("the retired root is still trusted")
	}
	if n := c.renewed.Load(); n != 0 {
		t.Errorf("%d renewals; the test wants the drop without one", n)
	}
}

func TestHostileCAResponsesRejected(t *testing.T) {
	e := newCA(t)
	other, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	otherAuth, err := ca.New(ca.Config{Issuer: other, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	genuineRoot := e.auth.Issuer().Root
	issue := func(a *ca.Authority, csr string, id ca.Identity) []string {
		iss, err := a.Issue(ca.Request{CSR: []byte(csr), Identity: id, TTL: time.Hour})
		if err != nil {
			t.Errorf("test CA: %v", err)
			return nil
		}
		return iss.PEMChain()
	}
	self := ca.Identity{TrustDomain: td, Namespace: ns, ServiceAccount: sa}
	cases := []struct {
		name   string
		answer func(req *pb.IstioCertificateRequest) []string
	}{
		{"leaf for another identity", func(req *pb.IstioCertificateRequest) []string {
			return issue(e.auth, req.Csr, ca.Identity{TrustDomain: td, Namespace: "ns2", ServiceAccount: "admin"})
		}},
		{"chain under an untrusted root", func(req *pb.IstioCertificateRequest) []string {
			return issue(otherAuth, req.Csr, self)
		}},
		{"leaf from another CA, genuine root appended", func(req *pb.IstioCertificateRequest) []string {
			ch := issue(otherAuth, req.Csr, self)
			ch[len(ch)-1] = pemCert(genuineRoot)
			return ch
		}},
		{"leaf for another key", func(*pb.IstioCertificateRequest) []string {
			return issue(e.auth, csrFor(t, wantID), self)
		}},
		{"empty chain", func(*pb.IstioCertificateRequest) []string { return nil }},
		{"not PEM", func(*pb.IstioCertificateRequest) []string { return []string{"hello"} }},
	}
	m, c := e.run(t, 2*time.Second)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eventually(t, 10*time.Second, "a good certificate", m.Ready)
			good := serial(t, m)
			failed := c.failed.Load()
			e.setHostile(func(req *pb.IstioCertificateRequest, _ *pb.IstioCertificateResponse) *pb.IstioCertificateResponse {
				return &pb.IstioCertificateResponse{CertChain: tc.answer(req)}
			})
			eventually(t, 10*time.Second, "rejected responses", func() bool { return c.failed.Load() >= failed+2 })
			if got, err := m.Certificate(); err == nil && got.Leaf.SerialNumber.String() != good {
				t.Fatalf("serving serial %s from a hostile response, want %s", got.Leaf.SerialNumber, good)
			}
			e.setHostile(nil)
			renewed := c.renewed.Load() + c.issued.Load()
			eventually(t, 10*time.Second, "recovery", func() bool { return c.renewed.Load()+c.issued.Load() > renewed })
			cert, _ := m.Certificate()
			checkCert(t, e, cert)
		})
	}
}

func TestCertificateBeforeFirst(t *testing.T) {
	m, err := New(Config{CAAddress: "127.0.0.1:1", RootCertFile: "r", TokenFile: "t", TrustDomain: td, Namespace: ns, ServiceAccount: sa})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Certificate(); !errors.Is(err, secrets.ErrNotReady) {
		t.Errorf("Certificate: %v, want ErrNotReady", err)
	}
	if _, err := m.Roots(); !errors.Is(err, secrets.ErrNotReady) {
		t.Errorf("Roots: %v, want ErrNotReady", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := m.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait: %v", err)
	}
	if m.ID() != wantID {
		t.Errorf("ID %s", m.ID())
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := Config{CAAddress: "127.0.0.1:15012", RootCertFile: "r", TokenFile: "t", TrustDomain: td, Namespace: ns, ServiceAccount: sa}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no address", func(c *Config) { c.CAAddress = "" }, "CA address is required"},
		{"address without port", func(c *Config) { c.CAAddress = "istiod" }, `CA address "istiod"`},
		{"no root file", func(c *Config) { c.RootCertFile = "" }, "root certificate file is required"},
		{"no token", func(c *Config) { c.TokenFile = "" }, "bootstrap token file is required"},
		{"no service account", func(c *Config) { c.ServiceAccount = "" }, "service account is required"},
		{"upper-case namespace", func(c *Config) { c.Namespace = "Prod" }, `namespace "Prod": character 'P'`},
		{"slash in service account", func(c *Config) { c.ServiceAccount = "a/b" }, `service account "a/b"`},
		{"negative ttl", func(c *Config) { c.TTL = -time.Second }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.mutate(&cfg)
			_, err := New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(good); err != nil {
		t.Fatalf("good config: %v", err)
	}
}
