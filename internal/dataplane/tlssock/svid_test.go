package tlssock

import (
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
)

func TestCheckSVID(t *testing.T) {
	u := func(s string) *url.URL { p, _ := url.Parse(s); return p }
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		ok   bool
	}{
		{"svid", &x509.Certificate{URIs: []*url.URL{u("spiffe://td/ns/a/sa/b")}}, true},
		{"no spiffe id", &x509.Certificate{DNSNames: []string{"example.com"}, URIs: []*url.URL{u("https://a"), u("https://b")}, IsCA: true}, true},
		{"two URI SANs", &x509.Certificate{URIs: []*url.URL{u("spiffe://td/ns/a/sa/b"), u("spiffe://td/ns/a/sa/c")}}, false},
		{"spiffe and another URI", &x509.Certificate{URIs: []*url.URL{u("https://x"), u("spiffe://td/ns/a/sa/b")}}, false},
		{"CA bit", &x509.Certificate{URIs: []*url.URL{u("spiffe://td/ns/a/sa/b")}, IsCA: true}, false},
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
