package sidecar_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/test/framework"
)

// TestXDSOverMutualTLS: a sidecar whose only xDS address is the control
// plane's secure port gets its identity from the CA there, then its
// configuration over mutual TLS with that certificate; the control plane
// serves it as the certificate's service account.
func TestXDSOverMutualTLS(t *testing.T) {
	cp := framework.StartControlPlaneWith(t, framework.ControlPlaneOptions{SecureAddress: "127.0.0.1:0"})
	secure := cp.SecureGRPCAddr().String()
	_, tokenFile, err := bootstrap.Mint(filepath.Join(cp.CADir, "bootstrap"), "default", "client")
	if err != nil {
		t.Fatal(err)
	}
	ip := loopbackIP()
	node, err := sidecar.NodeConfig{IP: ip, PodName: "client-1", Namespace: "default", ServiceAccount: "client"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(sidecar.Config{
		XDSAddress: secure, XDSServerName: "127.0.0.1", Node: node,
		AdminAddress: "127.0.0.1:0", HealthAddress: "127.0.0.1:0", MetricsAddress: "-",
		BindAddress: ip, DrainDuration: 10 * time.Millisecond,
		Identity: identity.Config{
			CAAddress: secure, RootCertFile: filepath.Join(cp.CADir, ca.RootFile), TokenFile: tokenFile,
			TrustDomain: "cluster.local", Namespace: "default", ServiceAccount: "client",
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
	framework.Eventually(t, 20*time.Second, func() error {
		for _, ty := range sc.Status().Types {
			if strings.HasSuffix(ty.TypeURL, "Listener") && !ty.LastUpdate.IsZero() {
				return nil
			}
		}
		return errors.New("no listeners from the control plane yet")
	})
	clients := cp.Clients()
	if len(clients) != 1 || clients[0].ProxyID != node.GetId() {
		t.Fatalf("control plane clients %+v, want the sidecar", clients)
	}
	if !sc.Ready() {
		t.Fatal("sidecar configured over mTLS but not ready")
	}

	// Without an identity, the secure port is not an option.
	_, err = sidecar.New(sidecar.Config{XDSAddress: secure, XDSServerName: "127.0.0.1", Node: node})
	if err == nil || !strings.Contains(fmt.Sprint(err), "identity") {
		t.Fatalf("New with xDS TLS and no identity = %v", err)
	}
}
