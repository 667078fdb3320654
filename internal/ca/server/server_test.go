package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const serverName = "istiod.istio-system.svc"

var (
	alice = ca.Identity{TrustDomain: "cluster.local", Namespace: "ns1", ServiceAccount: "a"}
	admin = "spiffe://cluster.local/ns/ns2/sa/admin"
)

// fakeReviewer stands in for the Kubernetes TokenReview API.
type fakeReviewer map[string][2]string

func (f fakeReviewer) Review(_ context.Context, token string) (string, string, error) {
	if v, ok := f[token]; ok {
		return v[0], v[1], nil
	}
	return "", "", errors.New("token not valid")
}

// env is a CA service listening on loopback over TLS.
type env struct {
	auth     *ca.Authority
	srv      *Server
	addr     string
	tokenDir string
	token    string // bootstrap token of alice
}

func newAuthority(t testing.TB, td string, is *ca.Issuer) *ca.Authority {
	t.Helper()
	a, err := ca.New(ca.Config{Issuer: is, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func start(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{auth: newAuthority(t, "cluster.local", is), tokenDir: t.TempDir()}
	if e.token, _, err = bootstrap.Mint(e.tokenDir, alice.Namespace, alice.ServiceAccount); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Authority: e.auth,
		Authenticators: []Authenticator{
			CertAuthenticator{Authority: e.auth},
			BootstrapAuthenticator{Verifier: bootstrap.Verifier{Dir: e.tokenDir}, TrustDomain: "cluster.local"},
			KubeAuthenticator{Reviewer: fakeReviewer{"h.p.s": {"ns3", "kube-sa"}}, TrustDomain: "cluster.local"},
		},
		ServingDNSNames: []string{serverName},
		ServingIPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if e.srv, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(e.srv.ServerOptions()...)
	e.srv.Register(gs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return e
}

// client dials the service verifying it with the CA's roots, presenting
// cert when given.
func (e *env) client(t *testing.T, cert *tls.Certificate) pb.IstioCertificateServiceClient {
	t.Helper()
	tc := &tls.Config{RootCAs: e.auth.Roots().Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	cc, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewIstioCertificateServiceClient(cc)
}

func bearer(tok string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func csrFor(t testing.TB, key crypto.Signer, uris ...string) string {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin"}}
	for _, u := range uris {
		p, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkChain parses the response, verifies it against the CA's roots and
// returns the leaf's identity and the leaf.
func (e *env) checkChain(t *testing.T, resp *pb.IstioCertificateResponse) (ca.Identity, *x509.Certificate) {
	t.Helper()
	var certs []*x509.Certificate
	for i, p := range resp.GetCertChain() {
		if !strings.HasSuffix(p, "\n") {
			t.Errorf("chain element %d does not end in a newline", i)
		}
		b, rest := pem.Decode([]byte(p))
		if b == nil || len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("chain element %d is not exactly one PEM certificate", i)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("chain of %d certificates, want [leaf, ..., root]", len(certs))
	}
	if !bytes.Equal(certs[len(certs)-1].Raw, e.auth.Issuer().Root.Raw) {
		t.Error("last chain element is not the root")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1 : len(certs)-1] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: e.auth.Roots().Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("chain does not verify against the root: %v", err)
	}
	id, err := ca.IdentityFromCert(certs[0])
	if err != nil {
		t.Fatal(err)
	}
	return id, certs[0]
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
}

// TestE1BootstrapIssuesOnlyTheProvenIdentity: a workload proving ns1/a
// with its bootstrap token asks for ns2/admin and gets ns1/a.
func TestE1BootstrapIssuesOnlyTheProvenIdentity(t *testing.T) {
	e := start(t, nil)
	resp, err := e.client(t, nil).CreateCertificate(bearer(e.token), &pb.IstioCertificateRequest{Csr: csrFor(t, newKey(t), admin)})
	if err != nil {
		t.Fatal(err)
	}
	id, leaf := e.checkChain(t, resp)
	if id != alice || len(leaf.URIs) != 1 {
		t.Fatalf("issued %v (%d URIs), want only %v", id, len(leaf.URIs), alice)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != ca.DefaultTTL+ca.ClockSkew {
		t.Errorf("lifetime %s, want the default", got)
	}
}

func TestRenewalWithMeshCertificate(t *testing.T) {
	e := start(t, nil)
	key := newKey(t)
	resp, err := e.client(t, nil).CreateCertificate(bearer(e.token), &pb.IstioCertificateRequest{Csr: csrFor(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	_, leaf := e.checkChain(t, resp)
	mine := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}

	// Renewal: the certificate alone proves the identity, whatever the CSR asks.
	resp, err = e.client(t, mine).CreateCertificate(context.Background(), &pb.IstioCertificateRequest{Csr: csrFor(t, newKey(t), admin), ValidityDuration: 3600})
	if err != nil {
		t.Fatal(err)
	}
	id, renewed := e.checkChain(t, resp)
	if id != alice || renewed.NotAfter.Sub(renewed.NotBefore) != time.Hour+ca.ClockSkew {
		t.Errorf("renewed %v for %s", id, renewed.NotAfter.Sub(renewed.NotBefore))
	}

	// A certificate from another root, and one of our root for another trust
	// domain, prove nothing (D2, D4 at the CA).
	other, _ := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), nil)
	foreignKey := newKey(t)
	for name, a := range map[string]*ca.Authority{
		"another root":         newAuthority(t, "cluster.local", other),
		"another trust domain": newAuthority(t, "evil.example", e.auth.Issuer()),
	} {
		t.Run(name, func(t *testing.T) {
			iss, err := a.Issue(ca.Request{CSR: []byte(csrFor(t, foreignKey)), Identity: ca.Identity{TrustDomain: a.TrustDomain(), Namespace: "ns1", ServiceAccount: "a"}})
			if err != nil {
				t.Fatal(err)
			}
			c := &tls.Certificate{Certificate: [][]byte{iss.Cert.Raw}, PrivateKey: foreignKey}
			_, err = e.client(t, c).CreateCertificate(context.Background(), &pb.IstioCertificateRequest{Csr: csrFor(t, newKey(t))})
			wantCode(t, err, codes.Unauthenticated)
		})
	}
}

func TestKubeTokenAuthenticator(t *testing.T) {
	e := start(t, nil)
	resp, err := e.client(t, nil).CreateCertificate(bearer("h.p.s"), &pb.IstioCertificateRequest{Csr: csrFor(t, newKey(t), admin)})
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := e.checkChain(t, resp); id.String() != "spiffe://cluster.local/ns/ns3/sa/kube-sa" {
		t.Errorf("issued %v", id)
	}
	_, err = e.client(t, nil).CreateCertificate(bearer("h.p.bad"), &pb.IstioCertificateRequest{Csr: csrFor(t, newKey(t))})
	wantCode(t, err, codes.Unauthenticated)
}

func TestRefusals(t *testing.T) {
	e := start(t, nil)
	cl := e.client(t, nil)
	csr := csrFor(t, newKey(t))
	forged := strings.TrimSuffix(e.token, e.token[len(e.token)-4:]) + "AAAA"
	imp, _ := structpb.NewStruct(map[string]any{"ImpersonatedIdentity": admin})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		req  *pb.IstioCertificateRequest
		code codes.Code
	}{
		{"no credential", context.Background(), &pb.IstioCertificateRequest{Csr: csr}, codes.Unauthenticated},
		{"forged bootstrap token", bearer(forged), &pb.IstioCertificateRequest{Csr: csr}, codes.Unauthenticated},
		{"token for an unknown workload", bearer(bootstrap.Prefix + "ns2/admin/secret"), &pb.IstioCertificateRequest{Csr: csr}, codes.Unauthenticated},
		{"token with a traversal", bearer(bootstrap.Prefix + "../ns1/a/x"), &pb.IstioCertificateRequest{Csr: csr}, codes.Unauthenticated},
		{"impersonation", bearer(e.token), &pb.IstioCertificateRequest{Csr: csr, Metadata: imp}, codes.Unauthenticated},
		{"TTL above the maximum (E2)", bearer(e.token), &pb.IstioCertificateRequest{Csr: csr, ValidityDuration: int64(ca.DefaultMaxTTL/time.Second) + 1}, codes.InvalidArgument},
		{"TTL overflowing (E2)", bearer(e.token), &pb.IstioCertificateRequest{Csr: csr, ValidityDuration: 1 << 62}, codes.InvalidArgument},
		{"garbage CSR (E3)", bearer(e.token), &pb.IstioCertificateRequest{Csr: "garbage"}, codes.InvalidArgument},
		{"empty CSR", bearer(e.token), &pb.IstioCertificateRequest{}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.CreateCertificate(tc.ctx, tc.req)
			wantCode(t, err, tc.code)
		})
	}
	// The default applies to TTL <= 0 (E2).
	resp, err := cl.CreateCertificate(bearer(e.token), &pb.IstioCertificateRequest{Csr: csr, ValidityDuration: -5})
	if err != nil {
		t.Fatal(err)
	}
	if _, leaf := e.checkChain(t, resp); leaf.NotAfter.Sub(leaf.NotBefore) != ca.DefaultTTL+ca.ClockSkew {
		t.Errorf("negative TTL gave %s", leaf.NotAfter.Sub(leaf.NotBefore))
	}
}

// hostileCSRs are requests a misbehaving or malicious workload may send.
func hostileCSRs(t *testing.T) map[string]string {
	good := csrFor(t, newKey(t))
	b, _ := pem.Decode([]byte(good))
	bad := bytes.Clone(b.Bytes)
	bad[len(bad)-2] ^= 0xff
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"garbage":       "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n",
		"bad signature": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bad})),
		"two blocks":    good + good,
		"RSA 1024":      csrFor(t, small),
		"16 KiB+":       good + strings.Repeat(" ", ca.MaxCSRBytes),
		"DER garbage":   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: bytes.Repeat([]byte{0x30, 0x82}, 500)})),
	}
}

// TestE3HostileBurstLeavesCAServing sends a concurrent burst of hostile
// CSRs, a 10 MB one among them, and then a good request.
func TestE3HostileBurstLeavesCAServing(t *testing.T) {
	e := start(t, nil)
	cl := e.client(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for round := range 20 {
		for name, csr := range hostileCSRs(t) {
			wg.Go(func() {
				_, err := cl.CreateCertificate(bearer(e.token), &pb.IstioCertificateRequest{Csr: csr})
				if c := status.Code(err); c != codes.InvalidArgument && c != codes.ResourceExhausted {
					errs <- errors.New(name + ": " + status.Convert(err).String())
				}
			})
		}
		if round%5 == 0 {
			wg.Go(func() {
				_, err := cl.CreateCertificate(bearer(e.token), &pb.IstioCertificateRequest{Csr: strings.Repeat("A", 10<<20)})
				if status.Code(err) != codes.ResourceExhausted {
					errs <- errors.New("10 MB CSR: " + status.Convert(err).String())
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	resp, err := cl.CreateCertificate(bearer(e.token), &pb.IstioCertificateRequest{Csr: csrFor(t, newKey(t))})
	if err != nil {
		t.Fatalf("CA not serving after the burst: %v", err)
	}
	if id, _ := e.checkChain(t, resp); id != alice {
		t.Errorf("issued %v", id)
	}
}

// blocking holds the only request slot until released.
type blocking struct {
	entered chan struct{}
	release chan struct{}
}

func (blocking) Name() string { return "blocking" }
func (b blocking) Authenticate(context.Context, Credentials) (ca.Identity, error) {
	b.entered <- struct{}{}
	<-b.release
	return ca.Identity{}, ErrNoCredential
}

func TestConcurrencyLimit(t *testing.T) {
	b := blocking{entered: make(chan struct{}), release: make(chan struct{})}
	e := start(t, func(c *Config) {
		c.Authenticators = []Authenticator{b}
		c.MaxConcurrent = 1
		c.QueueTimeout = 50 * time.Millisecond
	})
	cl := e.client(t, nil)
	first := make(chan error, 1)
	go func() {
		_, err := cl.CreateCertificate(context.Background(), &pb.IstioCertificateRequest{})
		first <- err
	}()
	<-b.entered
	_, err := cl.CreateCertificate(context.Background(), &pb.IstioCertificateRequest{})
	wantCode(t, err, codes.ResourceExhausted)
	close(b.release)
	wantCode(t, <-first, codes.Unauthenticated)
}

func TestServingCertificateRenewal(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	is, _ := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, now, nil)
	a, _ := ca.New(ca.Config{Issuer: is, TrustDomain: "cluster.local", Now: clock})
	s, err := New(Config{Authority: a, Authenticators: []Authenticator{CertAuthenticator{Authority: a}}, ServingDNSNames: []string{serverName}, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	c1, err := s.servingCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Leaf.DNSNames[0] != serverName || len(c1.Leaf.URIs) != 0 {
		t.Errorf("serving SANs %v %v", c1.Leaf.DNSNames, c1.Leaf.URIs)
	}
	if c2, _ := s.servingCertificate(nil); c2 != c1 {
		t.Error("renewed before half-life")
	}
	mu.Lock()
	now = now.Add(13 * time.Hour)
	mu.Unlock()
	c3, _ := s.servingCertificate(nil)
	if c3 == c1 || !c3.Leaf.NotAfter.After(c1.Leaf.NotAfter) {
		t.Error("not renewed after half-life")
	}
	// A new issuing root (rotation) re-issues at once.
	next, _ := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, clock(), nil)
	if err := a.SetIssuer(next); err != nil {
		t.Fatal(err)
	}
	c4, _ := s.servingCertificate(nil)
	if c4 == c3 || c4.Leaf.CheckSignatureFrom(next.Cert) != nil {
		t.Error("not re-issued under the new root")
	}
}

func TestNewConfig(t *testing.T) {
	is, _ := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), nil)
	a := newAuthority(t, "cluster.local", is)
	auth := []Authenticator{CertAuthenticator{Authority: a}}
	for name, cfg := range map[string]Config{
		"no authority":      {Authenticators: auth, ServingDNSNames: []string{"x"}},
		"no authenticators": {Authority: a, ServingDNSNames: []string{"x"}},
		"no serving names":  {Authority: a, Authenticators: auth},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
