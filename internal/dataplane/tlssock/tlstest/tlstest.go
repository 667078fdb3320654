// Package tlstest provides, for tests of TLS transport sockets, a minimal
// certificate authority issuing SPIFFE workload certificates and an
// in-memory secrets.Store whose material can be replaced (rotation). It
// is imported by tests only.
package tlstest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/secrets"
)

// CA is a self-signed root that signs leaf certificates directly.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA creates a root named name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, key: key}
}

// Pool returns a pool holding the root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf describes a certificate to issue.
type Leaf struct {
	URIs     []string
	DNSNames []string
	IPs      []net.IP
	// NotAfter defaults to a day from now.
	NotAfter time.Time
	// KeyUsage, when not zero, replaces digitalSignature|keyEncipherment.
	KeyUsage x509.KeyUsage
	// ExtKeyUsage, when not nil, replaces serverAuth and clientAuth.
	ExtKeyUsage []x509.ExtKeyUsage
	// RawURI, when set, is written byte for byte as the only URI SAN
	// (crypto/x509 refuses to encode, and to parse, a NUL in it); the
	// leaf is then returned without Leaf.
	RawURI string
}

// Issue signs a leaf with a fresh P-256 key, usable for client and server
// authentication unless l says otherwise.
func (ca *CA) Issue(t testing.TB, l Leaf) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if l.KeyUsage == 0 {
		l.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	if l.ExtKeyUsage == nil {
		l.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     l.NotAfter,
		KeyUsage:     l.KeyUsage,
		ExtKeyUsage:  l.ExtKeyUsage,
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
	}
	for _, u := range l.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if l.RawURI != "" {
		san, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(l.RawURI)}})
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs, tmpl.DNSNames, tmpl.IPAddresses = nil, nil, nil
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: san}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if l.RawURI != "" {
		return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// SPIFFE issues a workload certificate for spiffe://<td>/ns/<ns>/sa/<sa>.
func (ca *CA) SPIFFE(t testing.TB, td, ns, sa string) *tls.Certificate {
	return ca.Issue(t, Leaf{URIs: []string{fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td, ns, sa)}})
}

// Store is an in-memory secrets.Store. Names never set are unknown;
// names Expect-ed but not set yet are not ready (Wait blocks).
type Store struct {
	mu      sync.Mutex
	certs   map[string]*tls.Certificate
	roots   map[string]*x509.CertPool
	pending map[string]bool
	changed chan struct{} // closed and replaced on every change
	// Calls counts Certificate and Roots calls.
	Calls int
}

var _ secrets.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{certs: map[string]*tls.Certificate{}, roots: map[string]*x509.CertPool{}, pending: map[string]bool{}, changed: make(chan struct{})}
}

// Mesh returns a store with "default" (cert) and "ROOTCA" (ca's root).
func Mesh(cert *tls.Certificate, ca *CA) *Store {
	s := NewStore()
	s.SetCertificate(secrets.WorkloadCertificate, cert)
	s.SetRoots(secrets.RootCA, ca.Pool())
	return s
}

// Expect makes name known but not ready until it is set.
func (s *Store) Expect(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[name] = true
}

// SetCertificate replaces the certificate of name.
func (s *Store) SetCertificate(name string, c *tls.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs[name] = c
	s.notifyLocked()
}

// SetRoots replaces the trust bundle of name.
func (s *Store) SetRoots(name string, p *x509.CertPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roots[name] = p
	s.notifyLocked()
}

func (s *Store) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Certificate implements secrets.Store.
func (s *Store) Certificate(name string) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls++
	if c, ok := s.certs[name]; ok {
		return c, nil
	}
	if s.pending[name] {
		return nil, fmt.Errorf("certificate %q: %w", name, secrets.ErrNotReady)
	}
	return nil, fmt.Errorf("unknown certificate %q", name)
}

// Roots implements secrets.Store.
func (s *Store) Roots(name string) (*x509.CertPool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls++
	if p, ok := s.roots[name]; ok {
		return p, nil
	}
	if s.pending[name] {
		return nil, fmt.Errorf("trust bundle %q: %w", name, secrets.ErrNotReady)
	}
	return nil, fmt.Errorf("unknown trust bundle %q", name)
}

// Wait implements secrets.Store.
func (s *Store) Wait(ctx context.Context, name string) error {
	for {
		s.mu.Lock()
		_, c := s.certs[name]
		_, r := s.roots[name]
		pending := s.pending[name]
		ch := s.changed
		s.mu.Unlock()
		if c || r {
			return nil
		}
		if !pending {
			return fmt.Errorf("unknown secret %q", name)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
