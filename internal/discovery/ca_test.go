package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	"github.com/trellismesh/trellis/internal/testing/runready"
)

// runCA runs a control plane with the CA on a loopback port until the test
// ends and returns it once ready.
func runCA(t *testing.T, caDir string) *Server {
	t.Helper()
	cfg := testConfig(t, t.TempDir())
	cfg.SecureGRPCAddress = "127.0.0.1:0"
	cfg.CADir = caDir
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runready.Start(t, s, waitFor, "")
	return s
}

// issue asks the control plane's CA for a certificate with a bootstrap token.
func issue(t *testing.T, s *Server, caDir, token string) *x509.Certificate {
	t.Helper()
	is, err := ca.LoadDir(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(s.SecureGRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: is.Trusted.Pool(), ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	resp, err := pb.NewIstioCertificateServiceClient(cc).CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
	})
	if err != nil {
		t.Fatalf("CreateCertificate: %v", err)
	}
	b, _ := pem.Decode([]byte(resp.CertChain[0]))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: is.Trusted.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("issued certificate does not verify: %v", err)
	}
	return leaf
}

func TestCAServesOnSecurePortAndPersistsRoot(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	s := runCA(t, caDir)
	token, _, err := bootstrap.Mint(filepath.Join(caDir, "bootstrap"), "ns1", "a")
	if err != nil {
		t.Fatal(err)
	}
	leaf := issue(t, s, caDir, token)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/ns1/sa/a" {
		t.Fatalf("issued %v", leaf.URIs)
	}
	root1, _ := os.ReadFile(filepath.Join(caDir, ca.RootFile))

	// A second control plane on the same directory issues under the same root.
	s2 := runCA(t, caDir)
	issue(t, s2, caDir, token)
	root2, _ := os.ReadFile(filepath.Join(caDir, ca.RootFile))
	if string(root1) != string(root2) {
		t.Error("restart replaced the persisted root")
	}
}

func TestCARefusesBrokenDirectory(t *testing.T) {
	caDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(caDir, ca.CertFile), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.SecureGRPCAddress = "127.0.0.1:0"
	cfg.CADir = caDir
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), ca.KeyFile) || !strings.Contains(err.Error(), "incomplete CA directory") {
		t.Fatalf("Run = %v, want an error naming the missing files", err)
	}
	if b, _ := os.ReadFile(filepath.Join(caDir, ca.CertFile)); string(b) != "not a certificate" {
		t.Error("the broken directory was overwritten")
	}
}
