package ca

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"time"
)

const (
	// DefaultTTL is a workload certificate's lifetime when the caller asks
	// for none (Istio's default).
	DefaultTTL = 24 * time.Hour
	// DefaultMaxTTL caps what a caller may ask for (Istio's default).
	DefaultMaxTTL = 90 * 24 * time.Hour
	// ClockSkew backdates NotBefore so that a peer whose clock is a little
	// behind the CA's accepts a certificate issued just now.
	ClockSkew = 5 * time.Minute
)

// Config configures an Authority.
type Config struct {
	// Issuer is the verified signing material (LoadOrCreate, LoadDir).
	Issuer *Issuer
	// TrustDomain is the only trust domain the CA issues identities in.
	TrustDomain string
	// DefaultTTL applies when a request asks for none (default 24h); MaxTTL
	// is the most a request may ask for (default 90 days).
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// Now and Rand default to time.Now and crypto/rand.
	Now  func() time.Time
	Rand io.Reader
}

// Authority issues X.509 SVIDs. It is safe for concurrent use: the issuer
// is an immutable value swapped atomically by SetIssuer.
type Authority struct {
	cfg    Config
	issuer atomic.Pointer[Issuer]
}

// New checks cfg and returns an Authority. It does no I/O.
func New(cfg Config) (*Authority, error) {
	if cfg.Issuer == nil {
		return nil, errors.New("ca: no issuer")
	}
	if err := ValidateTrustDomain(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = DefaultTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = DefaultMaxTTL
	}
	if cfg.DefaultTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("ca: default TTL %s above the maximum %s", cfg.DefaultTTL, cfg.MaxTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	a := &Authority{cfg: cfg}
	a.issuer.Store(cfg.Issuer)
	return a, nil
}

// TrustDomain is the trust domain the CA issues in.
func (a *Authority) TrustDomain() string { return a.cfg.TrustDomain }

// Issuer returns the current signing material.
func (a *Authority) Issuer() *Issuer { return a.issuer.Load() }

// Roots returns the trust bundle: every root a peer certificate may chain
// to, the issuing one first.
func (a *Authority) Roots() Bundle { return a.issuer.Load().Trusted }

// SetIssuer replaces the signing material (a rotation step). Requests in
// flight finish with the previous issuer.
func (a *Authority) SetIssuer(is *Issuer) error {
	if is == nil || is.Cert == nil || is.Key == nil || is.Root == nil || !is.Trusted.Contains(is.Root) {
		return errors.New("ca: incomplete issuer")
	}
	a.issuer.Store(is)
	return nil
}

// Request asks for a workload certificate.
type Request struct {
	// CSR is the untrusted PEM request; only its public key is used.
	CSR []byte
	// Identity is what the caller proved (the authenticator's result). It
	// is the only identity the certificate carries, whatever the CSR asks.
	Identity Identity
	// TTL is the requested lifetime: <= 0 means the default, above the
	// maximum is an error.
	TTL time.Duration
	// MaxCSRBytes bounds the CSR (MaxCSRBytes when 0).
	MaxCSRBytes int
}

// Issued is a signed certificate and the chain that goes with it.
type Issued struct {
	Cert *x509.Certificate
	// Chain is [leaf, intermediates..., root], each DER.
	Chain [][]byte
}

// PEMChain returns the chain as IstioCertificateResponse.cert_chain holds
// it: one PEM certificate per element, each ending in a newline.
func (i *Issued) PEMChain() []string {
	out := make([]string, len(i.Chain))
	for k, der := range i.Chain {
		out[k] = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	return out
}

// Issue signs a workload certificate for req.Identity with the CSR's key.
// Request problems (CSR, TTL) are *RequestError.
func (a *Authority) Issue(req Request) (*Issued, error) {
	if err := req.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if req.Identity.TrustDomain != a.cfg.TrustDomain {
		return nil, fmt.Errorf("identity %s: trust domain %q is not this CA's %q", req.Identity, req.Identity.TrustDomain, a.cfg.TrustDomain)
	}
	ttl, err := a.ttl(req.TTL)
	if err != nil {
		return nil, err
	}
	csr, err := ParseCSR(req.CSR, req.MaxCSRBytes)
	if err != nil {
		return nil, err
	}
	uri, err := parseURI(req.Identity.String())
	if err != nil {
		return nil, err
	}
	return a.sign(&x509.Certificate{URIs: uri}, csr.PublicKey, ttl)
}

// Serving describes a control-plane serving certificate.
type Serving struct {
	DNSNames []string
	IPs      []net.IP
	TTL      time.Duration
}

// IssueServing signs a server certificate for the control plane's own key:
// DNS and IP SANs, no URI SAN. The caller generated the key; it is not
// checked against CSR rules beyond the allowed key types.
func (a *Authority) IssueServing(pub crypto.PublicKey, s Serving) (*Issued, error) {
	if len(s.DNSNames) == 0 && len(s.IPs) == 0 {
		return nil, errors.New("serving certificate: no DNS name or IP")
	}
	if err := CheckPublicKey(pub); err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	ttl, err := a.ttl(s.TTL)
	if err != nil {
		return nil, err
	}
	return a.sign(&x509.Certificate{DNSNames: s.DNSNames, IPAddresses: s.IPs}, pub, ttl)
}

func (a *Authority) ttl(d time.Duration) (time.Duration, error) {
	switch {
	case d <= 0:
		return a.cfg.DefaultTTL, nil
	case d > a.cfg.MaxTTL:
		return 0, &RequestError{Field: "ttl", Reason: fmt.Sprintf("requested %s is above the maximum %s", d, a.cfg.MaxTTL)}
	}
	return d, nil
}

// sign fills the fields every issued certificate shares: random 128-bit
// serial, backdated NotBefore, NotAfter capped at the signing certificate's,
// digitalSignature|keyEncipherment, serverAuth+clientAuth, CA:FALSE, SKI and
// AKI. An empty subject makes the SAN extension critical (RFC 5280 4.2.1.6).
func (a *Authority) sign(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration) (*Issued, error) {
	is := a.issuer.Load()
	now := a.cfg.Now()
	if now.After(is.Cert.NotAfter) {
		return nil, fmt.Errorf("signing certificate %s expired at %s", is.Cert.Subject, is.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := newSerial(a.cfg.Rand)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-ClockSkew)
	tmpl.NotAfter = now.Add(ttl)
	if tmpl.NotAfter.After(is.Cert.NotAfter) {
		tmpl.NotAfter = is.Cert.NotAfter
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	tmpl.SubjectKeyId = keyID(pub)
	if len(is.Cert.SubjectKeyId) == 0 {
		tmpl.AuthorityKeyId = keyID(is.Cert.PublicKey)
	}
	der, err := x509.CreateCertificate(a.cfg.Rand, tmpl, is.Cert, pub, is.Key)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	chain := [][]byte{der}
	if !bytes.Equal(is.Cert.Raw, is.Root.Raw) {
		chain = append(chain, is.Cert.Raw)
	}
	for _, c := range is.Chain {
		chain = append(chain, c.Raw)
	}
	chain = append(chain, is.Root.Raw)
	return &Issued{Cert: leaf, Chain: chain}, nil
}

// newSerial returns a random positive 128-bit serial number.
func newSerial(r io.Reader) (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(r, limit)
		if err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// keyID is a key identifier: the SHA-256 of the subjectPublicKey bits,
// truncated to 160 bits (RFC 7093 section 2, method 1).
func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm asn1.RawValue
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	sum := sha256.Sum256(spki.Key.Bytes)
	return sum[:20]
}
