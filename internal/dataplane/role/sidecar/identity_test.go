package sidecar_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	caserver "github.com/trellismesh/trellis/internal/ca/server"
	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/internal/dataplane/secrets"
	"github.com/trellismesh/trellis/test/framework"
)

// TestReadyOnlyWithIdentity: with a CA address, the sidecar is not ready
// while it has its configuration but no certificate, and becomes ready
// when the CA (started late) has issued it; the certificate is then served
// as the "default" secret.
func TestReadyOnlyWithIdentity(t *testing.T) {
	cp := framework.StartControlPlane(t, "")
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: "cluster.local"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.New(ca.Config{Issuer: is, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, tokenFile, err := bootstrap.Mint(filepath.Join(dir, "bootstrap"), "default", "client")
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(dir, "root-cert.pem")
	if err := os.WriteFile(rootFile, auth.Roots().PEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The CA's address, not served yet.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	caAddr := l.Addr().String()
	l.Close()

	ip := loopbackIP()
	node, err := sidecar.NodeConfig{IP: ip, PodName: "client-1", Namespace: "default", ServiceAccount: "client"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(sidecar.Config{
		XDSAddress: cp.XDSAddr().String(), Node: node,
		AdminAddress: "127.0.0.1:0", HealthAddress: "127.0.0.1:0", MetricsAddress: "-",
		BindAddress: ip, DrainDuration: 10 * time.Millisecond,
		Identity: identity.Config{
			CAAddress: caAddr, RootCertFile: rootFile, TokenFile: tokenFile,
			TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "client",
			MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		sc.Stop()
		cancel()
		<-done
	})

	// Configured, but no identity: not ready, and the health endpoint says why.
	framework.Eventually(t, 20*time.Second, func() error {
		for _, ty := range sc.Status().Types {
			if strings.HasSuffix(ty.TypeURL, "Listener") && !ty.LastUpdate.IsZero() {
				return nil
			}
		}
		return errors.New("no listeners from the control plane yet")
	})
	if sc.Ready() {
		t.Fatal("ready without a workload certificate")
	}
	if _, err := sc.Secrets().Certificate(secrets.WorkloadCertificate); !errors.Is(err, secrets.ErrNotReady) {
		t.Fatalf("default secret before the CA: %v, want ErrNotReady", err)
	}

	// The CA comes up: the sidecar becomes ready with its identity.
	srv, err := caserver.New(caserver.Config{
		Authority:      auth,
		Authenticators: []caserver.Authenticator{caserver.CertAuthenticator{Authority: auth}, caserver.BootstrapAuthenticator{Verifier: bootstrap.Verifier{Dir: filepath.Join(dir, "bootstrap")}, TrustDomain: "cluster.local"}},
		ServingIPs:     []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.ServerOptions()...)
	srv.Register(gs)
	cl, err := net.Listen("tcp", caAddr)
	if err != nil {
		t.Fatalf("CA address taken meanwhile: %v", err)
	}
	go gs.Serve(cl)
	t.Cleanup(gs.Stop)
	framework.Eventually(t, 20*time.Second, func() error {
		if !sc.Ready() {
			return errors.New("sidecar not ready")
		}
		return nil
	})
	cert, err := sc.Secrets().Certificate(secrets.WorkloadCertificate)
	if err != nil {
		t.Fatal(err)
	}
	if got := cert.Leaf.URIs[0].String(); got != "spiffe://cluster.local/ns/default/sa/client" {
		t.Errorf("workload identity %s", got)
	}
	if _, err := sc.Secrets().Roots(secrets.RootCA); err != nil {
		t.Errorf("ROOTCA: %v", err)
	}
}
