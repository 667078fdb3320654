package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	caserver "github.com/trellismesh/trellis/internal/ca/server"
)

const (
	td = "cluster.local"
	ns = "ns1"
	sa = "sa1"
)

var wantID = "spiffe://cluster.local/ns/ns1/sa/sa1"

// caEnv is the real CA service (internal/ca/server) on loopback, behind a
// wrapper that can turn its answers hostile.
type caEnv struct {
	t         *testing.T
	auth      *ca.Authority
	srv       *caserver.Server
	addr      string
	tokenFile string
	rootFile  string
	hostile   atomic.Value // func(req) (*pb.IstioCertificateResponse, error), or nil

	mu   sync.Mutex
	gs   *grpc.Server
	done chan struct{}
}

func newCA(t *testing.T) *caEnv {
	t.Helper()
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.New(ca.Config{Issuer: is, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	tokenDir := t.TempDir()
	_, tokenFile, err := bootstrap.Mint(tokenDir, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := caserver.New(caserver.Config{
		Authority: auth,
		Authenticators: []caserver.Authenticator{
			caserver.CertAuthenticator{Authority: auth},
			caserver.BootstrapAuthenticator{Verifier: bootstrap.Verifier{Dir: tokenDir}, TrustDomain: td},
		},
		ServingDNSNames: []string{"istiod.istio-system.svc"},
		ServingIPs:      []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &caEnv{t: t, auth: auth, srv: srv, tokenFile: tokenFile, rootFile: filepath.Join(t.TempDir(), "root-cert.pem")}
	e.writeRoots(auth.Roots().Certs()...)
	e.start("127.0.0.1:0")
	t.Cleanup(e.stop)
	return e
}

// wrapper answers with the hostile function when one is set.
type wrapper struct {
	pb.UnimplementedIstioCertificateServiceServer
	e *caEnv
}

func (w wrapper) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	resp, err := w.e.srv.CreateCertificate(ctx, req)
	if f, _ := w.e.hostile.Load().(func(*pb.IstioCertificateRequest, *pb.IstioCertificateResponse) *pb.IstioCertificateResponse); f != nil && err == nil {
		return f(req, resp), nil
	}
	return resp, err
}

func (e *caEnv) setHostile(f func(*pb.IstioCertificateRequest, *pb.IstioCertificateResponse) *pb.IstioCertificateResponse) {
	e.hostile.Store(f)
}

func (e *caEnv) start(addr string) {
	e.t.Helper()
	var lis net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		e.t.Fatal(err)
	}
	gs := grpc.NewServer(e.srv.ServerOptions()...)
	pb.RegisterIstioCertificateServiceServer(gs, wrapper{e: e})
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(lis) }()
	e.mu.Lock()
	e.addr, e.gs, e.done = lis.Addr().String(), gs, done
	e.mu.Unlock()
}

func (e *caEnv) stop() {
	e.mu.Lock()
	gs, done := e.gs, e.done
	e.gs = nil
	e.mu.Unlock()
	if gs != nil {
		gs.Stop()
		<-done
	}
}

func (e *caEnv) restart() { e.start(e.addr) }

func (e *caEnv) writeRoots(roots ...*x509.Certificate) {
	e.t.Helper()
	var b bytes.Buffer
	for _, c := range roots {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	tmp := e.rootFile + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, e.rootFile); err != nil {
		e.t.Fatal(err)
	}
}

// counts records Metrics calls.
type counts struct {
	issued, renewed, failed atomic.Int64
	expiry                  atomic.Int64
}

func (c *counts) Issued()            { c.issued.Add(1) }
func (c *counts) Renewed()           { c.renewed.Add(1) }
func (c *counts) Failed()            { c.failed.Add(1) }
func (c *counts) Expiry(t time.Time) { c.expiry.Store(t.Unix()) }

// run starts a manager against e with a short TTL and fast retries.
func (e *caEnv) run(t *testing.T, ttl time.Duration) (*Manager, *counts) {
	t.Helper()
	c := &counts{}
	m, err := New(Config{
		CAAddress: e.addr, RootCertFile: e.rootFile, TokenFile: e.tokenFile,
		TrustDomain: td, Namespace: ns, ServiceAccount: sa, TTL: ttl,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		RootCheckInterval: 20 * time.Millisecond, Metrics: c,
		Logger: testLogger(t),
	})
	if err != nil {
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
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := m.Wait(wctx); err != nil {
		t.Fatalf("no certificate: %v (failures %d)", err, c.failed.Load())
	}
	return m, c
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
