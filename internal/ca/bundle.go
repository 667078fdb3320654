package ca

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
)

// Bundle is an ordered set of trusted root certificates, duplicates removed
// (by DER). It is a value: the methods return new bundles and never modify
// the receiver, so a Bundle can be shared between goroutines.
//
// Order carries meaning: the first root is the one the CA issues under, so a
// consumer that reads only the first certificate of root-cert.pem still gets
// the right anchor.
type Bundle struct {
	certs []*x509.Certificate
}

// NewBundle returns the roots in order, later duplicates dropped.
func NewBundle(roots ...*x509.Certificate) Bundle {
	var b Bundle
	for _, r := range roots {
		if r != nil && !b.Contains(r) {
			b.certs = append(b.certs, r)
		}
	}
	return b
}

// Certs returns a copy of the roots in order.
func (b Bundle) Certs() []*x509.Certificate { return slices.Clone(b.certs) }

// Len is the number of roots.
func (b Bundle) Len() int { return len(b.certs) }

// Contains reports whether c is in the bundle.
func (b Bundle) Contains(c *x509.Certificate) bool { return b.index(c) >= 0 }

func (b Bundle) index(c *x509.Certificate) int {
	return slices.IndexFunc(b.certs, func(x *x509.Certificate) bool { return bytes.Equal(x.Raw, c.Raw) })
}

// With returns the bundle with c appended (unchanged if already present).
func (b Bundle) With(c *x509.Certificate) Bundle {
	return NewBundle(append(b.Certs(), c)...)
}

// Without returns the bundle without c.
func (b Bundle) Without(c *x509.Certificate) Bundle {
	i := b.index(c)
	if i < 0 {
		return b
	}
	return Bundle{certs: slices.Delete(b.Certs(), i, i+1)}
}

// Front returns the bundle with c first (added if absent), the others in
// their order.
func (b Bundle) Front(c *x509.Certificate) Bundle {
	return NewBundle(append([]*x509.Certificate{c}, b.Certs()...)...)
}

// Pool returns the roots as a verification pool.
func (b Bundle) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range b.certs {
		p.AddCert(c)
	}
	return p
}

// PEM encodes the roots in order, as root-cert.pem holds them.
func (b Bundle) PEM() []byte {
	var buf bytes.Buffer
	for _, c := range b.certs {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// Equal reports whether both bundles hold the same roots in the same order.
func (b Bundle) Equal(o Bundle) bool {
	return slices.EqualFunc(b.certs, o.certs, func(x, y *x509.Certificate) bool { return bytes.Equal(x.Raw, y.Raw) })
}

// Fingerprint is the SHA-256 of a certificate's DER, in lower-case hex
// pairs separated by colons (what `openssl x509 -fingerprint -sha256`
// prints, lower-cased).
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var b strings.Builder
	for i, x := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02x", x)
	}
	return b.String()
}

// ParseCertificates parses a PEM file of certificates (only CERTIFICATE
// blocks, nothing else but whitespace).
func ParseCertificates(data []byte) ([]*x509.Certificate, error) { return parseCerts(data) }

// EncodeCertificates returns the certificates as PEM, in order.
func EncodeCertificates(certs ...*x509.Certificate) []byte { return encodeCerts(certs...) }
