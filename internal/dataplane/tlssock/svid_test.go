package tlssock

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
)

func TestCheckSVID(t *testing.T) {
	u := func(s string) *url.URL {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return p
	}
	const ds = x509.KeyUsageDigitalSignature
	svid := func(ku x509.KeyUsage, uris ...string) *x509.Certificate {
		c := &x509.Certificate{KeyUsage: ku}
		for _, s := range uris {
			c.URIs = append(c.URIs, u(s))
		}
		return c
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		ok   bool
	}{
		{"svid", svid(ds|x509.KeyUsageKeyEncipherment, "spiffe://td/ns/a/sa/b"), true},
		{"svid, key agreement too", svid(ds|x509.KeyUsageKeyAgreement, "spiffe://cluster.local/ns/a-1/sa/b_2.x"), true},
		{"no spiffe id", &x509.Certificate{DNSNames: []string{"example.com"}, URIs: []*url.URL{u("https://a"), u("https://b")}, IsCA: true}, true},
		{"two URI SANs", svid(ds, "spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c"), false},
		{"spiffe and another URI", svid(ds, "https://x", "spiffe://td/ns/a/sa/b"), false},
		{"CA bit", &x509.Certificate{URIs: []*url.URL{u("spiffe://td/ns/a/sa/b")}, KeyUsage: ds, IsCA: true}, false},
		{"no key usage", svid(0, "spiffe://td/ns/a/sa/b"), false},
		{"no digitalSignature", svid(x509.KeyUsageKeyEncipherment, "spiffe://td/ns/a/sa/b"), false},
		{"keyCertSign", svid(ds|x509.KeyUsageCertSign, "spiffe://td/ns/a/sa/b"), false},
		{"cRLSign", svid(ds|x509.KeyUsageCRLSign, "spiffe://td/ns/a/sa/b"), false},
		{"percent-encoded NUL", svid(ds, "spiffe://td/ns/a/sa/b%00.evil"), false},
		{"percent-encoded letter", svid(ds, "spiffe://td/ns/a/sa/%62"), false},
		{"upper-case trust domain", svid(ds, "spiffe://Cluster.local/ns/a/sa/b"), false},
		{"port", svid(ds, "spiffe://td:8443/ns/a/sa/b"), false},
		{"user info", svid(ds, "spiffe://u@td/ns/a/sa/b"), false},
		{"query", svid(ds, "spiffe://td/ns/a/sa/b?x=y"), false},
		{"empty query", svid(ds, "spiffe://td/ns/a/sa/b?"), false},
		{"fragment", svid(ds, "spiffe://td/ns/a/sa/b#f"), false},
		{"dot segment", svid(ds, "spiffe://td/ns/a/sa/../admin"), false},
		{"empty segment", svid(ds, "spiffe://td/ns//sa/b"), false},
		{"trailing slash", svid(ds, "spiffe://td/ns/a/sa/b/"), false},
		{"no path", svid(ds, "spiffe://td"), false},
		{"bad path byte", svid(ds, "spiffe://td/ns/a/sa/b+c"), false},
		{"no trust domain", svid(ds, "spiffe:///ns/a/sa/b"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSVID(tc.cert)
			if (err == nil) != tc.ok {
				t.Fatalf("checkSVID = %v", err)
			}
			if err != nil && (!errors.Is(err, errNotSVID) || reasonOf(err) != ReasonBadCertificate) {
				t.Fatalf("error %v: reason %s", err, reasonOf(err))
			}
		})
	}
}

func TestCheckKeyUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		has  x509.KeyUsage
		need x509.KeyUsage
		ok   bool
	}{
		{"no extension", 0, x509.KeyUsageDigitalSignature, true},
		{"has it", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, x509.KeyUsageDigitalSignature, true},
		{"encipherment only, signing needed", x509.KeyUsageKeyEncipherment, x509.KeyUsageDigitalSignature, false},
		{"signing only, RSA key exchange", x509.KeyUsageDigitalSignature, x509.KeyUsageKeyEncipherment, false},
		{"CA usages only", x509.KeyUsageCertSign | x509.KeyUsageCRLSign, x509.KeyUsageDigitalSignature, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkKeyUsage(&x509.Certificate{KeyUsage: tc.has}, tc.need)
			if (err == nil) != tc.ok {
				t.Fatalf("checkKeyUsage = %v", err)
			}
			if err != nil && reasonOf(err) != ReasonBadCertificate {
				t.Fatalf("error %v: reason %s", err, reasonOf(err))
			}
		})
	}
}

func TestServerPeer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint16
		suite   uint16
		want    x509.KeyUsage
	}{
		{"TLS 1.3", tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, x509.KeyUsageDigitalSignature},
		{"ECDHE", tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, x509.KeyUsageDigitalSignature},
		{"RSA key exchange", tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, x509.KeyUsageKeyEncipherment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := serverPeer(&tls.ConnectionState{Version: tc.version, CipherSuite: tc.suite})
			if p.ku != tc.want || p.eku != x509.ExtKeyUsageServerAuth {
				t.Fatalf("serverPeer = %+v, want key usage %v and serverAuth", p, tc.want)
			}
		})
	}
	if clientPeer.eku != x509.ExtKeyUsageClientAuth || clientPeer.ku != x509.KeyUsageDigitalSignature {
		t.Fatalf("clientPeer = %+v", clientPeer)
	}
}
