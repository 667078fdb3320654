package secrets

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
)

// testCA issues real SVIDs with internal/ca (a test-only dependency).
type testCA struct {
	auth *ca.Authority
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(ca.Config{Issuer: is, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{auth: a}
}

// issue returns the PEM chain (leaf, root) and PEM key of a certificate
// for spiffe://cluster.local/ns/<ns>/sa/<sa>, and the leaf.
func (c *testCA) issue(t testing.TB, sa string) (chain, key []byte, leaf *x509.Certificate) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := c.auth.Issue(ca.Request{
		CSR:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}),
		Identity: ca.Identity{TrustDomain: "cluster.local", Namespace: "ns", ServiceAccount: sa},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	return []byte(strings.Join(iss.PEMChain(), "")), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), iss.Cert
}

func (c *testCA) rootPEM() []byte { return c.auth.Roots().PEM() }

// clock is a settable Now.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// logBuf is a concurrency-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// write replaces path atomically (as Kubernetes and cert-manager do).
func write(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFileCertLoadedAndReloaded(t *testing.T) {
	c := newTestCA(t)
	dir := t.TempDir()
	chainFile, keyFile := filepath.Join(dir, "cert-chain.pem"), filepath.Join(dir, "key.pem")
	name := FileCertPrefix + chainFile + "~" + keyFile
	clk := newClock()
	var logs logBuf
	s := New(Config{CheckInterval: time.Second, Now: clk.now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	if _, err := s.Certificate(name); !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), chainFile) {
		t.Fatalf("missing files: %v, want ErrNotReady naming %s", err, chainFile)
	}
	chainA, keyA, leafA := c.issue(t, "a")
	write(t, chainFile, chainA)
	write(t, keyFile, keyA)
	clk.advance(time.Second)
	got, err := s.Certificate(name)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Leaf.Equal(leafA) || len(got.Certificate) != 2 {
		t.Fatalf("served %v with %d certificates, want leaf a and its root", got.Leaf.URIs, len(got.Certificate))
	}

	chainB, keyB, leafB := c.issue(t, "bb")
	write(t, chainFile, chainB)
	write(t, keyFile, keyB)
	if got, _ := s.Certificate(name); !got.Leaf.Equal(leafA) {
		t.Fatal("reloaded before the check interval")
	}
	clk.advance(time.Second)
	if got, _ := s.Certificate(name); !got.Leaf.Equal(leafB) {
		t.Fatalf("served %v after the change, want b", got.Leaf.URIs)
	}

	// A key that does not match the chain is rejected: b stays.
	_, keyC, _ := c.issue(t, "c")
	write(t, keyFile, keyC)
	clk.advance(time.Second)
	if got, err := s.Certificate(name); err != nil || !got.Leaf.Equal(leafB) {
		t.Fatalf("after an invalid key: %v, %v; want b kept", got, err)
	}
	if !strings.Contains(logs.String(), "keeping the last good material") {
		t.Errorf("rejection not logged: %s", logs.String())
	}
	// A deleted file keeps b too.
	os.Remove(chainFile)
	clk.advance(time.Second)
	if got, err := s.Certificate(name); err != nil || !got.Leaf.Equal(leafB) {
		t.Fatalf("after a deleted file: %v; want b kept", err)
	}
	// Valid files again: served.
	chainD, keyD, leafD := c.issue(t, "dd")
	write(t, chainFile, chainD)
	write(t, keyFile, keyD)
	clk.advance(time.Second)
	if got, _ := s.Certificate(name); !got.Leaf.Equal(leafD) {
		t.Fatalf("served %v, want d", got.Leaf.URIs)
	}
	// A certificate name is not a trust bundle.
	if _, err := s.Roots(name); err == nil {
		t.Error("Roots of a file-cert name succeeded")
	}
}

func TestFileRootLoadedAndReloaded(t *testing.T) {
	c1, c2 := newTestCA(t), newTestCA(t)
	_, _, leaf1 := c1.issue(t, "a")
	_, _, leaf2 := c2.issue(t, "a")
	file := filepath.Join(t.TempDir(), "ca.pem")
	name := FileRootPrefix + file
	clk := newClock()
	s := New(Config{CheckInterval: time.Second, Now: clk.now})
	verifies := func(leaf *x509.Certificate) bool {
		p, err := s.Roots(name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaf.Verify(x509.VerifyOptions{Roots: p, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err == nil
	}
	write(t, file, c1.rootPEM())
	if !verifies(leaf1) || verifies(leaf2) {
		t.Fatal("bundle 1 should trust CA 1 only")
	}
	write(t, file, append(c1.rootPEM(), c2.rootPEM()...))
	clk.advance(time.Second)
	if !verifies(leaf1) || !verifies(leaf2) {
		t.Fatal("bundle 1+2 should trust both")
	}
	for _, bad := range [][]byte{[]byte("not pem"), nil, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")} {
		write(t, file, bad)
		clk.advance(time.Second)
		if !verifies(leaf2) {
			t.Fatalf("invalid bundle %q replaced the last good one", bad)
		}
	}
	if _, err := s.Certificate(name); err == nil {
		t.Error("Certificate of a file-root name succeeded")
	}
}

func TestFileSecretWaitUntilWritten(t *testing.T) {
	c := newTestCA(t)
	file := filepath.Join(t.TempDir(), "ca.pem")
	name := FileRootPrefix + file
	s := New(Config{CheckInterval: 5 * time.Millisecond})
	if _, err := s.Roots(name); !errors.Is(err, ErrNotReady) {
		t.Fatalf("missing file: %v, want ErrNotReady", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Wait(ctx, name) }()
	write(t, file, c.rootPEM())
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := s.Wait(short, FileRootPrefix+file+".missing"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait on a file that never appears: %v", err)
	}
}

// workload stands in for the identity manager.
type workload struct {
	cert  *tls.Certificate
	pool  *x509.CertPool
	ready chan struct{}
}

func (w *workload) Certificate() (*tls.Certificate, error) {
	select {
	case <-w.ready:
		return w.cert, nil
	default:
		return nil, ErrNotReady
	}
}

func (w *workload) Roots() (*x509.CertPool, error) {
	if _, err := w.Certificate(); err != nil {
		return nil, err
	}
	return w.pool, nil
}

func (w *workload) Wait(ctx context.Context) error {
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestWorkloadNames(t *testing.T) {
	c := newTestCA(t)
	chain, key, leaf := c.issue(t, "a")
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{cert: &cert, pool: c.auth.Roots().Pool(), ready: make(chan struct{})}
	s := New(Config{Workload: w})
	if _, err := s.Certificate(WorkloadCertificate); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before the identity: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait(context.Background(), WorkloadCertificate) }()
	close(w.ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, err := s.Certificate(WorkloadCertificate); err != nil || !got.Leaf.Equal(leaf) {
		t.Fatalf("default: %v", err)
	}
	if p, err := s.Roots(RootCA); err != nil || p != w.pool {
		t.Fatalf("ROOTCA: %v", err)
	}
	if _, err := s.Roots(WorkloadCertificate); err == nil {
		t.Error(`Roots("default") succeeded`)
	}
	if _, err := s.Certificate(RootCA); err == nil {
		t.Error(`Certificate("ROOTCA") succeeded`)
	}

	// Without an identity, the names fail at once, also in Wait.
	none := New(Config{})
	for _, name := range []string{WorkloadCertificate, RootCA} {
		err := none.Wait(context.Background(), name)
		if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "no mesh identity") {
			t.Errorf("%s without identity: %v", name, err)
		}
	}
}

func TestUnavailableNames(t *testing.T) {
	s := New(Config{})
	for _, tc := range []struct {
		name     string
		notReady bool
		want     string
	}{
		{"kubernetes://gw-cred", true, "Kubernetes secrets"},
		{"kubernetes://gw-cred-cacert", true, "Kubernetes secrets"},
		{"configmap://x", false, "unknown name"},
		{"", false, "unknown name"},
		{"file-cert:only-one-file", false, "want file-cert:<chain file>~<key file>"},
		{"file-cert:a~b~c", false, "want file-cert"},
		{"file-root:", false, "want file-root:<CA file>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Wait(context.Background(), tc.name) // must not block
			if err == nil || errors.Is(err, ErrNotReady) != tc.notReady || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Wait: %v, want ErrNotReady=%v and %q", err, tc.notReady, tc.want)
			}
			if _, err := s.Certificate(tc.name); err == nil {
				t.Fatal("Certificate succeeded")
			}
			if _, err := s.Roots(tc.name); err == nil {
				t.Fatal("Roots succeeded")
			}
		})
	}
}

func TestSystemRoots(t *testing.T) {
	s := New(Config{})
	p, err := s.Roots(SystemRoots)
	if err != nil || p == nil {
		t.Fatalf("system roots: %v", err)
	}
	if err := s.Wait(context.Background(), SystemRoots); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReads reads a file secret from many goroutines while it
// changes (run with -race).
func TestConcurrentReads(t *testing.T) {
	c := newTestCA(t)
	dir := t.TempDir()
	chainFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	chain, key, _ := c.issue(t, "a")
	write(t, chainFile, chain)
	write(t, keyFile, key)
	s := New(Config{CheckInterval: time.Nanosecond})
	name := FileCertPrefix + chainFile + "~" + keyFile
	// Loaded once before the files start changing: from then on a
	// half-written pair (new key, old chain) keeps the last good one.
	if _, err := s.Certificate(name); err != nil {
		t.Fatalf("first load: %v", err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Certificate(name); err != nil {
					t.Errorf("Certificate: %v", err)
					return
				}
			}
		})
	}
	for i := range 20 {
		ch, k, _ := c.issue(t, strings.Repeat("x", i+1))
		write(t, keyFile, k)
		write(t, chainFile, ch)
	}
	close(stop)
	wg.Wait()
}

func BenchmarkCertificate(b *testing.B) {
	c := newTestCA(b)
	dir := b.TempDir()
	chainFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	chain, key, _ := c.issue(b, "a")
	write(b, chainFile, chain)
	write(b, keyFile, key)
	s := New(Config{})
	name := FileCertPrefix + chainFile + "~" + keyFile
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Certificate(name); err != nil {
				b.Fatal(err)
			}
		}
	})
}
