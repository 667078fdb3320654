package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// The four files of a CA directory: the same names as Istio's plugged-in
// CA (cacerts), so a self-signed CA persisted by Trellis and an operator's
// intermediate load through one path.
const (
	CertFile  = "ca-cert.pem"    // the signing certificate
	KeyFile   = "ca-key.pem"     // its private key
	ChainFile = "cert-chain.pem" // ca-cert followed by the certificates up to the root
	RootFile  = "root-cert.pem"  // the trusted roots, the issuing one first
)

// Issuer is the signing material of a CA: verified, immutable once built.
type Issuer struct {
	// Cert signs workload certificates (ca-cert.pem).
	Cert *x509.Certificate
	// Key is Cert's private key (ca-key.pem).
	Key crypto.Signer
	// Chain holds the certificates between Cert and Root, nearest first
	// (from cert-chain.pem, without Cert itself and without roots).
	Chain []*x509.Certificate
	// Root is the trusted root Cert chains to. For a self-signed CA it is
	// Cert itself.
	Root *x509.Certificate
	// Trusted is root-cert.pem: every root workloads must trust, Root first.
	Trusted Bundle
}

// PEMFiles is the content of the four files.
type PEMFiles struct {
	Cert, Key, Chain, Root []byte
}

// ParseIssuer parses and verifies CA material. dir only labels errors. The
// checks: ca-cert.pem holds one certificate that is a CA (basic constraints
// CA:TRUE, key usage keyCertSign), valid at now, with an allowed key type;
// ca-key.pem holds one private key matching it; cert-chain.pem, when not
// empty, starts with ca-cert and continues towards the root; root-cert.pem
// holds at least one CA certificate, none expired; ca-cert verifies through
// the chain to one of the roots at now.
func ParseIssuer(dir string, f PEMFiles, now time.Time) (*Issuer, error) {
	path := func(name string) string { return dir + "/" + name }
	certs, err := parseCerts(f.Cert)
	if err != nil {
		return nil, &FileError{Path: path(CertFile), Reason: "parsing", Err: err}
	}
	if len(certs) != 1 {
		return nil, &FileError{Path: path(CertFile), Reason: fmt.Sprintf("holds %d certificates, want exactly one", len(certs))}
	}
	cert := certs[0]
	if err := checkCA(cert, now); err != nil {
		return nil, &FileError{Path: path(CertFile), Reason: err.Error()}
	}
	key, err := parseKey(f.Key)
	if err != nil {
		return nil, &FileError{Path: path(KeyFile), Reason: "parsing", Err: err}
	}
	if err := keyMatches(key, cert.PublicKey); err != nil {
		return nil, &FileError{Path: path(KeyFile), Reason: fmt.Sprintf("does not match the certificate in %s: %v", CertFile, err)}
	}
	roots, err := parseCerts(f.Root)
	if err != nil {
		return nil, &FileError{Path: path(RootFile), Reason: "parsing", Err: err}
	}
	if len(roots) == 0 {
		return nil, &FileError{Path: path(RootFile), Reason: "no certificate"}
	}
	for i, r := range roots {
		if err := checkCA(r, now); err != nil {
			return nil, &FileError{Path: path(RootFile), Reason: fmt.Sprintf("certificate %d (%s): %v", i+1, r.Subject, err)}
		}
	}
	trusted := NewBundle(roots...)
	var chain []*x509.Certificate
	if len(bytes.TrimSpace(f.Chain)) > 0 {
		cc, err := parseCerts(f.Chain)
		if err != nil {
			return nil, &FileError{Path: path(ChainFile), Reason: "parsing", Err: err}
		}
		if len(cc) > 0 && bytes.Equal(cc[0].Raw, cert.Raw) {
			cc = cc[1:]
		}
		for i, c := range cc {
			if trusted.Contains(c) {
				continue // the root, commonly appended; it comes from root-cert.pem
			}
			if err := checkCA(c, now); err != nil {
				return nil, &FileError{Path: path(ChainFile), Reason: fmt.Sprintf("certificate %d (%s): %v", i+1, c.Subject, err)}
			}
			chain = append(chain, c)
		}
	}
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         trusted.Pool(),
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, &FileError{Path: path(CertFile), Reason: fmt.Sprintf("does not chain to a root in %s through %s", RootFile, ChainFile), Err: err}
	}
	// Any verified chain names the root ca-cert is under.
	best := chains[0]
	root := best[len(best)-1]
	var between []*x509.Certificate
	if len(best) > 2 {
		between = best[1 : len(best)-1]
	}
	return &Issuer{
		Cert:    cert,
		Key:     key,
		Chain:   between,
		Root:    root,
		Trusted: trusted.Front(root),
	}, nil
}

// PEM returns the four files' content for this issuer.
func (is *Issuer) PEM() (PEMFiles, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(is.Key)
	if err != nil {
		return PEMFiles{}, fmt.Errorf("encoding the CA key: %w", err)
	}
	chain := append([]*x509.Certificate{is.Cert}, is.Chain...)
	if !bytes.Equal(is.Cert.Raw, is.Root.Raw) {
		chain = append(chain, is.Root)
	}
	return PEMFiles{
		Cert:  encodeCerts(is.Cert),
		Key:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Chain: encodeCerts(chain...),
		Root:  is.Trusted.PEM(),
	}, nil
}

// withTrusted returns a copy of the issuer with another trust bundle (the
// issuing root stays first).
func (is *Issuer) withTrusted(b Bundle) *Issuer {
	c := *is
	c.Trusted = b.Front(is.Root)
	return &c
}

func checkCA(c *x509.Certificate, now time.Time) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return errors.New("not a CA certificate (basic constraints CA:TRUE missing)")
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("key usage lacks keyCertSign")
	}
	if c.KeyUsage == 0 {
		return errors.New("no key usage extension (keyCertSign required)")
	}
	if now.Before(c.NotBefore) {
		return fmt.Errorf("not valid before %s", c.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(c.NotAfter) {
		return fmt.Errorf("expired at %s", c.NotAfter.UTC().Format(time.RFC3339))
	}
	if err := CheckPublicKey(c.PublicKey); err != nil {
		return err
	}
	return nil
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(out)+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data that is not a PEM certificate")
	}
	return out, nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	b, rest := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("more than one PEM block")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("key type %T not supported (ECDSA or RSA)", k)
	}
}

func keyMatches(key crypto.Signer, pub crypto.PublicKey) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	kp, ok := key.Public().(equaler)
	if !ok || !kp.Equal(pub) {
		return errors.New("public keys differ")
	}
	return nil
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}
