package discovery

import (
	"fmt"
	"net"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	caserver "github.com/trellismesh/trellis/internal/ca/server"
)

// secureGRPC loads (or, on first start, creates) the CA in cfg.CADir and
// returns the gRPC server for the secure port: Istio's CA service and ADS
// for callers with a mesh certificate (meshAuth), on one TLS server whose
// client certificates are requested, not required, and verified by each
// service against the CA's live trust bundle.
func (s *Server) secureGRPC() (*grpc.Server, error) {
	if s.cfg.CADir == "" {
		return nil, fmt.Errorf("CA: no CA directory")
	}
	td := s.cfg.TrustDomain
	if td == "" {
		td = s.cfg.Mesh.GetTrustDomain()
	}
	if td == "" {
		td = "cluster.local"
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
	authority, err := ca.New(ca.Config{Issuer: is, TrustDomain: td})
	if err != nil {
		return nil, fmt.Errorf("CA: %w", err)
	}
	s.caFollow = newCAFollower(s.cfg.CADir, authority, s.log)
	ns := s.cfg.Mesh.GetRootNamespace()
	if ns == "" {
		ns = "istio-system"
	}
	cs, err := caserver.New(caserver.Config{
		Authority: authority,
		Authenticators: []caserver.Authenticator{
			caserver.CertAuthenticator{Authority: authority},
			caserver.BootstrapAuthenticator{Verifier: bootstrap.Verifier{Dir: filepath.Join(s.cfg.CADir, "bootstrap")}, TrustDomain: td},
		},
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
	// The CA's options (TLS, handshake deadline, header limit), with the
	// message limit raised to the plaintext xDS port's: delta requests
	// carry initial_resource_versions and subscriptions of whole meshes.
	// CSRs are still bounded by the CA (MaxCSRBytes) after decoding.
	opts := append(cs.ServerOptions(), grpc.MaxRecvMsgSize(maxXDSRequestBytes))
	gs := grpc.NewServer(opts...)
	cs.Register(gs)
	s.xds.RegisterAuthenticated(gs, meshAuth{cert: caserver.CertAuthenticator{Authority: authority}}.authenticate)
	return gs, nil
}
