package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
)

// Credentials are what a caller presented, taken from the connection and
// the request metadata. Nothing in them is trusted until an Authenticator
// has verified it.
type Credentials struct {
	// PeerCertificates is the client certificate chain as sent in the TLS
	// handshake, leaf first, unverified.
	PeerCertificates []*x509.Certificate
	// BearerToken is the value of "authorization: Bearer <token>".
	BearerToken string
	// RemoteAddr is the caller's address (for logs).
	RemoteAddr net.Addr
}

// ErrNoCredential means the credentials carry nothing an authenticator
// handles (no client certificate, no token of its kind); the next one is
// tried.
var ErrNoCredential = errors.New("no credential of this kind")

// Authenticator proves an identity from credentials. Implementations must
// return only an identity the credential proves cryptographically or by a
// trusted lookup, never one taken from the request.
type Authenticator interface {
	// Name labels the authenticator in logs ("mtls", "bootstrap", "kube").
	Name() string
	// Authenticate returns the proven identity, ErrNoCredential, or the
	// reason the presented credential failed.
	Authenticate(ctx context.Context, c Credentials) (ca.Identity, error)
}

// maxPeerChain bounds the client chain a caller may make the CA verify.
const maxPeerChain = 8

// CertAuthenticator accepts an existing mesh certificate (renewal): the
// client chain must verify against the CA's current trust bundle (old and
// new roots during a rotation) for client authentication, and the leaf must
// be an SVID (one SPIFFE URI SAN, CA:FALSE) in the CA's trust domain.
type CertAuthenticator struct {
	Authority *ca.Authority
}

func (CertAuthenticator) Name() string { return "mtls" }

func (a CertAuthenticator) Authenticate(_ context.Context, c Credentials) (ca.Identity, error) {
	if len(c.PeerCertificates) == 0 {
		return ca.Identity{}, ErrNoCredential
	}
	if len(c.PeerCertificates) > maxPeerChain {
		return ca.Identity{}, fmt.Errorf("client chain of %d certificates, at most %d", len(c.PeerCertificates), maxPeerChain)
	}
	leaf := c.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, cert := range c.PeerCertificates[1:] {
		inter.AddCert(cert)
	}
	// The CA's own intermediates, so a client that sends only its leaf
	// still verifies under a plugged-in CA.
	is := a.Authority.Issuer()
	inter.AddCert(is.Cert)
	for _, cert := range is.Chain {
		inter.AddCert(cert)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         a.Authority.Roots().Pool(),
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return ca.Identity{}, fmt.Errorf("client certificate: %w", err)
	}
	id, err := ca.IdentityFromCert(leaf)
	if err != nil {
		return ca.Identity{}, fmt.Errorf("client certificate: %w", err)
	}
	if id.TrustDomain != a.Authority.TrustDomain() {
		return ca.Identity{}, fmt.Errorf("client certificate: trust domain %q is not %q", id.TrustDomain, a.Authority.TrustDomain())
	}
	return id, nil
}

// BootstrapAuthenticator accepts a local-mode bootstrap token (package
// bootstrap) in the bearer header.
type BootstrapAuthenticator struct {
	Verifier    bootstrap.Verifier
	TrustDomain string
}

func (BootstrapAuthenticator) Name() string { return "bootstrap" }

func (a BootstrapAuthenticator) Authenticate(_ context.Context, c Credentials) (ca.Identity, error) {
	if c.BearerToken == "" {
		return ca.Identity{}, ErrNoCredential
	}
	ns, sa, err := a.Verifier.Verify(c.BearerToken)
	if errors.Is(err, bootstrap.ErrNotBootstrap) {
		return ca.Identity{}, ErrNoCredential
	}
	if err != nil {
		return ca.Identity{}, err
	}
	return ca.Identity{TrustDomain: a.TrustDomain, Namespace: ns, ServiceAccount: sa}, nil
}

// TokenReviewer validates a Kubernetes service-account token (audience,
// expiry, signature, bound pod) and returns its namespace and service
// account. The Kubernetes issue implements it with the TokenReview API; this
// package depends on no Kubernetes client.
type TokenReviewer interface {
	Review(ctx context.Context, token string) (namespace, serviceAccount string, err error)
}

// KubeAuthenticator accepts a Kubernetes service-account JWT in the bearer
// header, checked by Reviewer. Bootstrap tokens and anything not shaped
// like a JWT are left to other authenticators.
type KubeAuthenticator struct {
	Reviewer    TokenReviewer
	TrustDomain string
}

func (KubeAuthenticator) Name() string { return "kube" }

func (a KubeAuthenticator) Authenticate(ctx context.Context, c Credentials) (ca.Identity, error) {
	if c.BearerToken == "" || strings.HasPrefix(c.BearerToken, bootstrap.Prefix) || strings.Count(c.BearerToken, ".") != 2 {
		return ca.Identity{}, ErrNoCredential
	}
	ns, sa, err := a.Reviewer.Review(ctx, c.BearerToken)
	if err != nil {
		return ca.Identity{}, fmt.Errorf("service-account token: %w", err)
	}
	id := ca.Identity{TrustDomain: a.TrustDomain, Namespace: ns, ServiceAccount: sa}
	if err := id.Validate(); err != nil {
		return ca.Identity{}, fmt.Errorf("service-account token: %w", err)
	}
	return id, nil
}
