package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// t0 is the fixed "now" of the tests.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// caSpec describes a test CA certificate; zero fields take sane defaults.
type caSpec struct {
	cn        string
	notBefore time.Time
	notAfter  time.Time
	notCA     bool
	keyUsage  x509.KeyUsage
	key       crypto.Signer
}

type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// mkCA makes a CA certificate signed by parent (self-signed when nil).
func mkCA(t testing.TB, parent *testCA, s caSpec) *testCA {
	t.Helper()
	if s.key == nil {
		s.key = ecKey(t)
	}
	if s.cn == "" {
		s.cn = "test CA"
	}
	if s.notBefore.IsZero() {
		s.notBefore = t0.Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = t0.Add(365 * 24 * time.Hour)
	}
	if s.keyUsage == 0 {
		s.keyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.cn},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              s.keyUsage,
		BasicConstraintsValid: true,
		IsCA:                  !s.notCA,
	}
	signer, issuer := s.key, tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, s.key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: s.key}
}

func pemCerts(cs ...*x509.Certificate) []byte { return encodeCerts(cs...) }

func pemKey(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// mkCSR makes a PEM CSR for key asking for the given URIs and DNS names.
func mkCSR(t testing.TB, key crypto.Signer, uris []string, dns ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "asks for things"}, DNSNames: dns}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func fixedNow() time.Time { return t0 }

// selfSigned returns an authority over a fresh self-signed root at t0.
func selfSigned(t testing.TB) *Authority {
	t.Helper()
	is, err := NewSelfSigned(SelfSigned{TrustDomain: "cluster.local"}, t0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Issuer: is, TrustDomain: "cluster.local", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var alice = Identity{TrustDomain: "cluster.local", Namespace: "ns1", ServiceAccount: "a"}
