package identity

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/ca"
)

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func pemChain(c *tls.Certificate) []byte {
	var b []byte
	for _, der := range c.Certificate {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return b
}

func pemKey(t *testing.T, c *tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// csrFor makes a CSR for a fresh key.
func csrFor(t testing.TB, uri string) string {
	t.Helper()
	u, _ := url.Parse(uri)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{u}}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestVerifyResponse(t *testing.T) {
	now := time.Now()
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.New(ca.Config{Issuer: is, TrustDomain: td})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, now, nil)
	key := newKey(t)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	self := ca.Identity{TrustDomain: td, Namespace: ns, ServiceAccount: sa}
	good, err := auth.Issue(ca.Request{CSR: []byte(csr), Identity: self, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// A certificate with the CA bit, signed by the genuine CA.
	caLeafTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
		URIs: good.Cert.URIs, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	caLeafDER, err := x509.CreateCertificate(rand.Reader, caLeafTmpl, is.Cert, key.Public(), is.Key)
	if err != nil {
		t.Fatal(err)
	}
	caLeaf, _ := x509.ParseCertificate(caLeafDER)
	// Leaves signed by the genuine CA whose usages break the X.509-SVID
	// rules (SECURITY.md D7).
	leafWith := func(serial int64, ku x509.KeyUsage, eku ...x509.ExtKeyUsage) string {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour),
			URIs: good.Cert.URIs, KeyUsage: ku, ExtKeyUsage: eku}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, is.Cert, key.Public(), is.Key)
		if err != nil {
			t.Fatal(err)
		}
		return pemCert(&x509.Certificate{Raw: der})
	}
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}

	trusted := []*x509.Certificate{is.Root}
	for _, tc := range []struct {
		name    string
		chain   []string
		trusted []*x509.Certificate
		when    time.Time
		want    string // "" = accepted
	}{
		{"good", good.PEMChain(), trusted, now, ""},
		{"good, all in one element", []string{strings.Join(good.PEMChain(), "")}, trusted, now, ""},
		{"empty", nil, trusted, now, "cert_chain is empty"},
		{"garbage", []string{"x"}, trusted, now, "not PEM certificates"},
		{"trailing garbage", []string{good.PEMChain()[0] + "x", good.PEMChain()[1]}, trusted, now, "not PEM certificates"},
		{"key block", []string{"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, trusted, now, `PEM block "PRIVATE KEY"`},
		{"root not trusted", good.PEMChain(), []*x509.Certificate{other.Root}, now, "leaf does not verify"},
		{"expired", good.PEMChain(), trusted, now.Add(2 * time.Hour), "leaf does not verify"},
		{"CA bit", []string{pemCert(caLeaf), pemCert(is.Root)}, trusted, now, "leaf is a CA"},
		{"no digitalSignature", []string{leafWith(8, x509.KeyUsageKeyEncipherment, both...), pemCert(is.Root)}, trusted, now, "lacks digitalSignature"},
		{"no key usage", []string{leafWith(9, 0, both...), pemCert(is.Root)}, trusted, now, "lacks digitalSignature"},
		{"keyCertSign without CA bit", []string{leafWith(10, x509.KeyUsageDigitalSignature|x509.KeyUsageCertSign, both...), pemCert(is.Root)}, trusted, now, "keyCertSign"},
		{"server auth only", []string{leafWith(11, x509.KeyUsageDigitalSignature, x509.ExtKeyUsageServerAuth), pemCert(is.Root)}, trusted, now, "for client authentication"},
		{"client auth only", []string{leafWith(12, x509.KeyUsageDigitalSignature, x509.ExtKeyUsageClientAuth), pemCert(is.Root)}, trusted, now, "not valid for server authentication"},
		{"too long", func() []string {
			var ch []string
			for range maxChain + 1 {
				ch = append(ch, good.PEMChain()[0])
			}
			return ch
		}(), trusted, now, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaf, chain, root, err := verifyResponse(tc.chain, wantID, key.Public(), tc.trusted, tc.when)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !leaf.Equal(good.Cert) || len(chain) != 1 || root == nil || !root.Equal(is.Root) {
				t.Fatalf("leaf/chain/root not as issued: chain of %d, root %v", len(chain), root != nil)
			}
		})
	}
	// Another identity and another key, through the same CA.
	if _, _, _, err := verifyResponse(good.PEMChain(), "spiffe://cluster.local/ns/ns1/sa/other", key.Public(), trusted, now); err == nil || !strings.Contains(err.Error(), "want exactly") {
		t.Errorf("other identity: %v", err)
	}
	if _, _, _, err := verifyResponse(good.PEMChain(), wantID, newKey(t).Public(), trusted, now); err == nil || !strings.Contains(err.Error(), "key of the request") {
		t.Errorf("other key: %v", err)
	}
}

func TestRenewIn(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                string
		notBefore, notAfter time.Time
		r                   float64
		want                time.Duration
	}{
		{"half, no jitter", now.Add(-5 * time.Minute), now.Add(24 * time.Hour), 0.5, 12 * time.Hour},
		{"earliest", now.Add(-5 * time.Minute), now.Add(24 * time.Hour), 0, 12*time.Hour - 72*time.Minute},
		{"latest", now.Add(-5 * time.Minute), now.Add(24 * time.Hour), 1, 12*time.Hour + 72*time.Minute},
		{"CA clock ahead", now.Add(time.Hour), now.Add(25 * time.Hour), 0.5, 13 * time.Hour},
		{"already expired", now.Add(-2 * time.Hour), now.Add(-time.Hour), 0.5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := renewIn(tc.notBefore, tc.notAfter, now, tc.r); got != tc.want {
				t.Errorf("renewIn = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		failures int
		r        float64
		want     time.Duration
	}{
		{1, 0.999999999, time.Second},
		{1, 0, 500 * time.Millisecond},
		{2, 0.999999999, 2 * time.Second},
		{4, 0.999999999, 8 * time.Second},
		{20, 0.999999999, time.Minute},
		{20, 0, 30 * time.Second},
	} {
		got := backoff(time.Second, time.Minute, tc.failures, tc.r)
		if d := got - tc.want; d > time.Millisecond || d < -time.Millisecond {
			t.Errorf("backoff(%d failures, r=%v) = %s, want %s", tc.failures, tc.r, got, tc.want)
		}
	}
}

// FuzzVerifyResponse feeds untrusted CA responses to the validator: it
// must never panic, and anything it accepts carries the requested identity
// and key.
func FuzzVerifyResponse(f *testing.F) {
	now := time.Now()
	is, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, now, nil)
	if err != nil {
		f.Fatal(err)
	}
	auth, _ := ca.New(ca.Config{Issuer: is, TrustDomain: td})
	key := newKey(f)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	good, err := auth.Issue(ca.Request{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), Identity: ca.Identity{TrustDomain: td, Namespace: ns, ServiceAccount: sa}})
	if err != nil {
		f.Fatal(err)
	}
	ch := good.PEMChain()
	f.Add(ch[0], ch[1])
	f.Add(ch[0]+ch[1], "")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		leaf, _, _, err := verifyResponse([]string{a, b}, wantID, key.Public(), []*x509.Certificate{is.Root}, now)
		if err != nil {
			return
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantID || !key.PublicKey.Equal(leaf.PublicKey) {
			t.Fatalf("accepted a leaf for %v", leaf.URIs)
		}
	})
}
