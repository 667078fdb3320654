//go:build linux

package mtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// svid describes a client certificate to craft. The zero values of the
// usage fields give what the mesh CA issues.
type svid struct {
	uris                []string
	notBefore, notAfter time.Time
	isCA                bool
	// keyUsage, when not zero, replaces digitalSignature|keyEncipherment.
	keyUsage x509.KeyUsage
	// extKeyUsage, when not nil, replaces clientAuth and serverAuth.
	extKeyUsage []x509.ExtKeyUsage
	// rawURI, when set, is written as the only URI SAN byte for byte
	// (crypto/x509 would refuse to encode it), replacing uris.
	rawURI string
	// chain is appended after the leaf (intermediates, nearest first).
	chain []*x509.Certificate
}

func (s svid) with(f func(*svid)) svid { f(&s); return s }

// sign issues the leaf under parent and returns it with s.chain.
func (s svid) sign(t *testing.T, parent *x509.Certificate, parentKey crypto.Signer) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  s.isCA,
	}
	if s.isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if s.keyUsage != 0 {
		tmpl.KeyUsage = s.keyUsage
	}
	if s.extKeyUsage != nil {
		tmpl.ExtKeyUsage = s.extKeyUsage
	}
	for _, u := range s.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	if s.rawURI != "" {
		tmpl.URIs = nil
		tmpl.ExtraExtensions = []pkix.Extension{rawURISAN(t, s.rawURI)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	out := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	for _, c := range s.chain {
		out.Certificate = append(out.Certificate, c.Raw)
	}
	return out
}

// rawURISAN is a subjectAltName extension holding uri as its only
// uniformResourceIdentifier, bytes as given (a NUL included).
func rawURISAN(t *testing.T, uri string) pkix.Extension {
	t.Helper()
	der, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 6, Bytes: []byte(uri)}})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der}
}

// intermediate issues a CA certificate under parent, valid from
// notBefore to notAfter.
func intermediate(t *testing.T, parent *x509.Certificate, parentKey crypto.Signer, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"cluster.local"}, CommonName: "intermediate"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func selfSigned(t *testing.T, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"cluster.local"}, CommonName: "another root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
