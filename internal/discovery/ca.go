package discovery

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	caserver "github.com/trellismesh/trellis/internal/ca/server"
	"github.com/trellismesh/trellis/internal/kube/cacert"
)

// secureGRPC loads (or, on first start, creates) the CA — in cfg.CADir, or
// on a cluster in the system namespace's Secrets — and returns the gRPC server for the secure port: Istio's CA service and ADS
// for callers with a mesh certificate (meshAuth), on one TLS server whose
// client certificates are requested, not required, and verified by each
// service against the CA's live trust bundle.
func (s *Server) secureGRPC(ctx context.Context) (*grpc.Server, error) {
	td := s.cfg.TrustDomain
	if td == "" {
		td = s.cfg.Mesh.GetTrustDomain()
	}
	if td == "" {
		td = "cluster.local"
	}
	var is *ca.Issuer
	var err error
	if s.cfg.Kube != nil {
		is, err = s.kubeIssuer(ctx, td)
	} else {
		is, err = s.dirIssuer(td)
	}
	if err != nil {
		return nil, err
	}
	authority, err := ca.New(ca.Config{Issuer: is, TrustDomain: td})
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	s.authority = authority
	var authenticators []caserver.Authenticator
	authenticators = append(authenticators, caserver.CertAuthenticator{Authority: authority})
	if s.cfg.Kube != nil {
		s.caSecrets = cacert.NewFollower(cacert.FollowerConfig{
			Client: s.cfg.Kube.Kube, Namespace: s.cfg.SystemNamespace, Authority: authority, Logger: s.log.With("component", "ca-secret"),
		})
		authenticators = append(authenticators, caserver.KubeAuthenticator{
			Reviewer: cacert.Reviewer{Client: s.cfg.Kube.Kube, Audiences: []string{cacert.DefaultAudience}}, TrustDomain: td,
		})
	} else {
		s.caFollow = newCAFollower(s.cfg.CADir, authority, s.log)
	}
	if s.cfg.CADir != "" {
		authenticators = append(authenticators, caserver.BootstrapAuthenticator{Verifier: bootstrap.Verifier{Dir: filepath.Join(s.cfg.CADir, "bootstrap")}, TrustDomain: td})
	}
	ns := s.cfg.Mesh.GetRootNamespace()
	if ns == "" {
		ns = "istio-system"
	}
	cs, err := caserver.New(caserver.Config{
		Authority:      authority,
		Authenticators: authenticators,
		// The names Istio's agents dial (CA_ADDR istiod.<ns>.svc:15012),
		// Trellis' own service name, and loopback for local mode.
		ServingDNSNames: []string{
			"istiod." + ns + ".svc", "istiod." + ns + ".svc." + s.cfg.DomainSuffix,
			"trellis-discovery." + ns + ".svc", "localhost",
		},
		ServingIPs: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		Logger:     s.log.With("component", "ca"),
	})
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	// The CA's options (TLS, handshake deadline, header limit, streams,
	// keepalive), then the xDS ports' limits (limits.go), which raise the
	// message limit to the plaintext port's.
	opts := append(cs.ServerOptions(), xdsLimits().ServerOptions()...)
	gs := grpc.NewServer(opts...)
	cs.Register(gs)
	s.xds.RegisterAuthenticated(gs, meshAuth{cert: caserver.CertAuthenticator{Authority: authority}}.authenticate)
	return gs, nil
}

// dirIssuer loads (or, on first start, creates) the CA in cfg.CADir.
func (s *Server) dirIssuer(td string) (*ca.Issuer, error) {
	if s.cfg.CADir == "" {
		return nil, fmt.Errorf("CA: no CA directory")
	}
	is, created, err := ca.LoadOrCreate(s.cfg.CADir, ca.SelfSigned{TrustDomain: td}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	if created {
		s.log.Info("CA: generated a self-signed root", "dir", s.cfg.CADir, "notAfter", is.Root.NotAfter)
	} else {
		s.log.Info("CA: loaded", "dir", s.cfg.CADir, "issuer", is.Cert.Subject.String(), "root", is.Root.Subject.String(), "trustedRoots", is.Trusted.Len())
	}
	return is, nil
}

// kubeIssuer loads the CA from the system namespace's Secrets (cacerts,
// else istio-ca-secret), creating istio-ca-secret with a self-signed root
// on the cluster's first start (package kube/cacert).
func (s *Server) kubeIssuer(ctx context.Context, td string) (*ca.Issuer, error) {
	l, err := cacert.Load(ctx, s.cfg.Kube.Kube, s.cfg.SystemNamespace, ca.SelfSigned{TrustDomain: td}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	if l.Created {
		s.log.Info("CA: generated a self-signed root", "secret", l.Secret, "notAfter", l.Issuer.Root.NotAfter)
	} else {
		s.log.Info("CA: loaded", "secret", l.Secret, "form", l.Form, "issuer", l.Issuer.Cert.Subject.String(), "root", l.Issuer.Root.Subject.String(), "trustedRoots", l.Issuer.Trusted.Len())
	}
	return l.Issuer, nil
}
