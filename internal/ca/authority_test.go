package ca

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// verifyChain checks an issued chain against the authority's roots.
func verifyChain(t *testing.T, a *Authority, iss *Issued) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, der := range iss.Chain[1 : len(iss.Chain)-1] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	if _, err := iss.Cert.Verify(x509.VerifyOptions{Roots: a.Roots().Pool(), Intermediates: inter, CurrentTime: t0,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("issued chain does not verify: %v", err)
	}
	if !bytes.Equal(iss.Chain[len(iss.Chain)-1], a.Issuer().Root.Raw) {
		t.Error("last element of the chain is not the issuing root")
	}
}

func TestIssueSVID(t *testing.T) {
	a := selfSigned(t)
	key := ecKey(t)
	// The CSR asks for another identity, DNS names and a subject (E1).
	csr := mkCSR(t, key, []string{"spiffe://cluster.local/ns/ns2/sa/admin"}, "admin.ns2.svc")
	iss, err := a.Issue(Request{CSR: csr, Identity: alice})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Cert
	verifyChain(t, a, iss)
	if len(iss.Chain) != 2 {
		t.Errorf("self-signed chain has %d elements, want [leaf, root]", len(iss.Chain))
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"exactly one URI SAN, the proven identity", len(c.URIs) == 1 && c.URIs[0].String() == alice.String()},
		{"no DNS, email or IP SANs", len(c.DNSNames)+len(c.EmailAddresses)+len(c.IPAddresses) == 0},
		{"empty subject", len(c.Subject.Names) == 0},
		{"SAN extension critical (empty subject)", sanCritical(c)},
		{"CSR's key", key.PublicKey.Equal(c.PublicKey)},
		{"key usage digitalSignature|keyEncipherment", c.KeyUsage == x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment},
		{"EKU serverAuth+clientAuth", len(c.ExtKeyUsage) == 2 && c.ExtKeyUsage[0] == x509.ExtKeyUsageServerAuth && c.ExtKeyUsage[1] == x509.ExtKeyUsageClientAuth},
		{"CA:FALSE", c.BasicConstraintsValid && !c.IsCA},
		{"SKI", len(c.SubjectKeyId) == 20},
		{"AKI is the issuer's SKI", bytes.Equal(c.AuthorityKeyId, a.Issuer().Cert.SubjectKeyId) && len(c.AuthorityKeyId) > 0},
		{"serial positive, at most 128 bits", c.SerialNumber.Sign() > 0 && c.SerialNumber.BitLen() <= 128},
		{"NotBefore backdated by ClockSkew", c.NotBefore.Equal(t0.Add(-ClockSkew))},
		{"default TTL 24h", c.NotAfter.Equal(t0.Add(24 * time.Hour))},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: failed", ch.name)
		}
	}
	id, err := IdentityFromCert(c)
	if err != nil || id != alice {
		t.Errorf("IdentityFromCert = %v, %v", id, err)
	}
}

func sanCritical(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal([]int{2, 5, 29, 17}) {
			return e.Critical
		}
	}
	return false
}

func TestIssueSerialsDiffer(t *testing.T) {
	a := selfSigned(t)
	csr := mkCSR(t, ecKey(t), nil)
	seen := map[string]bool{}
	for range 50 {
		iss, err := a.Issue(Request{CSR: csr, Identity: alice})
		if err != nil {
			t.Fatal(err)
		}
		s := iss.Cert.SerialNumber.String()
		if seen[s] {
			t.Fatalf("serial %s issued twice", s)
		}
		seen[s] = true
	}
}

func TestIssueTTL(t *testing.T) {
	a := selfSigned(t)
	csr := mkCSR(t, ecKey(t), nil)
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		want time.Duration // 0: error
	}{
		{"zero is the default (E2)", 0, 24 * time.Hour},
		{"negative is the default (E2)", -time.Hour, 24 * time.Hour},
		{"one hour", time.Hour, time.Hour},
		{"the maximum", DefaultMaxTTL, DefaultMaxTTL},
		{"above the maximum (E2)", DefaultMaxTTL + time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := a.Issue(Request{CSR: csr, Identity: alice, TTL: tc.ttl})
			if tc.want == 0 {
				var re *RequestError
				if !errors.As(err, &re) || re.Field != "ttl" {
					t.Fatalf("got %v, want a ttl RequestError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := iss.Cert.NotAfter.Sub(t0); got != tc.want {
				t.Errorf("lifetime %s, want %s", got, tc.want)
			}
		})
	}
}

func TestIssueRefusals(t *testing.T) {
	a := selfSigned(t)
	csr := mkCSR(t, ecKey(t), nil)
	for _, tc := range []struct {
		name string
		req  Request
		err  string
	}{
		{"other trust domain", Request{CSR: csr, Identity: Identity{"evil.example", "ns1", "a"}}, "not this CA's"},
		{"invalid identity", Request{CSR: csr, Identity: Identity{"cluster.local", "NS", "a"}}, "namespace"},
		{"empty identity", Request{CSR: csr}, "trust domain"},
		{"bad CSR", Request{CSR: []byte("x"), Identity: alice}, "csr:"},
		{"CSR above the caller's limit", Request{CSR: csr, Identity: alice, MaxCSRBytes: 10}, "above the 10-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Issue(tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error containing %q", err, tc.err)
			}
		})
	}
}

func TestIssueCappedAtIssuerExpiry(t *testing.T) {
	root := mkCA(t, nil, caSpec{notAfter: t0.Add(2 * time.Hour)})
	is, err := ParseIssuer("mem", PEMFiles{Cert: pemCerts(root.cert), Key: pemKey(t, root.key), Root: pemCerts(root.cert)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Issuer: is, TrustDomain: "cluster.local", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.Issue(Request{CSR: mkCSR(t, ecKey(t), nil), Identity: alice})
	if err != nil {
		t.Fatal(err)
	}
	if !iss.Cert.NotAfter.Equal(root.cert.NotAfter) {
		t.Errorf("NotAfter %s, want the issuer's %s", iss.Cert.NotAfter, root.cert.NotAfter)
	}
	late, _ := New(Config{Issuer: is, TrustDomain: "cluster.local", Now: func() time.Time { return t0.Add(3 * time.Hour) }})
	if _, err := late.Issue(Request{CSR: mkCSR(t, ecKey(t), nil), Identity: alice}); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("issuing under an expired CA: %v", err)
	}
}

func TestIssuePluggedChain(t *testing.T) {
	root := mkCA(t, nil, caSpec{cn: "operator root"})
	inter := mkCA(t, root, caSpec{cn: "cluster intermediate"})
	is, err := ParseIssuer("mem", PEMFiles{
		Cert:  pemCerts(inter.cert),
		Key:   pemKey(t, inter.key),
		Chain: pemCerts(inter.cert, root.cert),
		Root:  pemCerts(root.cert),
	}, t0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Issuer: is, TrustDomain: "cluster.local", Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.Issue(Request{CSR: mkCSR(t, ecKey(t), nil), Identity: alice})
	if err != nil {
		t.Fatal(err)
	}
	if len(iss.Chain) != 3 || !bytes.Equal(iss.Chain[1], inter.cert.Raw) || !bytes.Equal(iss.Chain[2], root.cert.Raw) {
		t.Fatalf("chain is not [leaf, intermediate, root]")
	}
	verifyChain(t, a, iss)
	pems := iss.PEMChain()
	if len(pems) != 3 || !strings.HasSuffix(pems[0], "-----END CERTIFICATE-----\n") {
		t.Errorf("PEMChain = %q", pems)
	}
}

func TestIssueServing(t *testing.T) {
	a := selfSigned(t)
	key := ecKey(t)
	iss, err := a.IssueServing(&key.PublicKey, Serving{DNSNames: []string{"istiod.istio-system.svc"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(iss.Cert.URIs) != 0 || iss.Cert.DNSNames[0] != "istiod.istio-system.svc" || iss.Cert.IsCA {
		t.Errorf("serving certificate SANs/CA: %v %v %v", iss.Cert.URIs, iss.Cert.DNSNames, iss.Cert.IsCA)
	}
	if _, err := iss.Cert.Verify(x509.VerifyOptions{DNSName: "istiod.istio-system.svc", Roots: a.Roots().Pool(), CurrentTime: t0}); err != nil {
		t.Errorf("serving certificate does not verify for its name: %v", err)
	}
	if _, err := a.IssueServing(&key.PublicKey, Serving{}); err == nil {
		t.Error("serving certificate without names was issued")
	}
}

func TestNewConfig(t *testing.T) {
	is, err := NewSelfSigned(SelfSigned{TrustDomain: "cluster.local"}, t0, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no issuer", Config{TrustDomain: "cluster.local"}},
		{"bad trust domain", Config{Issuer: is, TrustDomain: "Bad Domain"}},
		{"default above max", Config{Issuer: is, TrustDomain: "cluster.local", DefaultTTL: 48 * time.Hour, MaxTTL: time.Hour}},
	} {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%s: New accepted it", tc.name)
		}
	}
}
