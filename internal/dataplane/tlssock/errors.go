package tlssock

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

// Reasons of a failed handshake (HandshakeError.Reason), used as metric
// labels and in Envoy's UPSTREAM_TRANSPORT_FAILURE_REASON.
const (
	ReasonNoClientCert   = "no_client_certificate"
	ReasonUnknownCA      = "unknown_ca"
	ReasonExpired        = "certificate_expired"
	ReasonBadCertificate = "bad_certificate"
	ReasonSANMismatch    = "san_mismatch"
	ReasonVersion        = "protocol_version"
	ReasonNoCipher       = "no_shared_cipher"
	ReasonNoSNI          = "no_sni"
	ReasonNotReady       = "secret_not_ready"
	ReasonTimeout        = "timeout"
	ReasonRemoteClose    = "remote_close"
	ReasonOther          = "handshake_error"
)

// HandshakeError is a failed TLS handshake with the reason's label.
type HandshakeError struct {
	Reason string
	Err    error
}

func (e *HandshakeError) Error() string {
	return "TLS handshake failed: " + e.Reason + ": " + e.Err.Error()
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// Reason returns the reason label of err: its HandshakeError's, else
// ReasonOther.
func Reason(err error) string {
	var he *HandshakeError
	if errors.As(err, &he) {
		return he.Reason
	}
	return ReasonOther
}

// alertReason labels an alert received from the peer.
func alertReason(msg string) string {
	for _, a := range []struct{ text, reason string }{
		{"certificate required", ReasonNoClientCert},
		{"unknown certificate authority", ReasonUnknownCA},
		{"expired certificate", ReasonExpired},
		{"bad certificate", ReasonBadCertificate},
		{"protocol version not supported", ReasonVersion},
		{"handshake failure", ReasonNoCipher},
		{"insufficient security level", ReasonNoCipher},
	} {
		if strings.Contains(msg, a.text) {
			return a.reason
		}
	}
	return ReasonOther
}

// classify wraps a handshake error in a HandshakeError with its reason.
func classify(err error) error {
	var he *HandshakeError
	if errors.As(err, &he) {
		return err
	}
	return &HandshakeError{Reason: reasonOf(err), Err: err}
}

func reasonOf(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		invalid x509.CertificateInvalidError
		ne      net.Error
	)
	msg := err.Error()
	switch {
	case errors.Is(err, errNoPeerCert) || strings.Contains(msg, "didn't provide a certificate"):
		return ReasonNoClientCert
	case errors.Is(err, errSANMismatch):
		return ReasonSANMismatch
	case errors.Is(err, errNotSVID) || errors.Is(err, errKeyUsage):
		return ReasonBadCertificate
	case errors.As(err, &unknown):
		return ReasonUnknownCA
	case errors.As(err, &invalid):
		if invalid.Reason == x509.Expired {
			return ReasonExpired
		}
		return ReasonBadCertificate
	case errors.Is(err, secrets.ErrNotReady):
		return ReasonNotReady
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return ReasonTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		return ReasonRemoteClose
	case strings.Contains(msg, "remote error"):
		// The peer's alert (crypto/tls reports it as text).
		return alertReason(msg)
	case strings.Contains(msg, "unsupported versions") || strings.Contains(msg, "protocol version"):
		return ReasonVersion
	case strings.Contains(msg, "no cipher suite supported"):
		return ReasonNoCipher
	case strings.Contains(msg, "failed to parse certificate") || strings.Contains(msg, "failed to parse client certificate") ||
		strings.Contains(msg, "bad certificate"):
		return ReasonBadCertificate
	}
	return ReasonOther
}
