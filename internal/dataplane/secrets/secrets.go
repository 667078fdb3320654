package secrets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Well-known SDS resource names (see internal/xds/gen/mtls).
const (
	// WorkloadCertificate is the workload's SVID chain and key.
	WorkloadCertificate = "default"
	// RootCA is the mesh trust bundle.
	RootCA = "ROOTCA"
)

// ErrNotReady is returned (wrapped) for a name the store knows but cannot
// serve yet (the identity is still being fetched). Handshakes fail with
// it; callers that may wait use Wait.
var ErrNotReady = errors.New("secret not ready")

// Store resolves SDS secret names to the current material. Methods are
// safe for concurrent use and cheap enough to call per handshake.
type Store interface {
	// Certificate returns the current certificate chain and key of name.
	Certificate(name string) (*tls.Certificate, error)
	// Roots returns the current trust bundle of name.
	Roots(name string) (*x509.CertPool, error)
	// Wait blocks until name can be served (SDS initial_fetch_timeout 0s:
	// a listener or cluster that needs it stays warming), or ctx ends.
	Wait(ctx context.Context, name string) error
}
