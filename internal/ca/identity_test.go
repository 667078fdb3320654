package ca

import (
	"crypto/x509"
	"net/url"
	"strings"
	"testing"
)

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Identity
		err      string
	}{
		{name: "valid", in: "spiffe://cluster.local/ns/ns1/sa/a", want: alice},
		{name: "dotted service account", in: "spiffe://td/ns/x/sa/a.b-c", want: Identity{"td", "x", "a.b-c"}},
		{name: "other scheme", in: "https://cluster.local/ns/ns1/sa/a", err: "scheme"},
		{name: "no trust domain", in: "spiffe:///ns/ns1/sa/a", err: "trust domain"},
		{name: "upper-case trust domain", in: "spiffe://Cluster.local/ns/ns1/sa/a", err: "trust domain"},
		{name: "port", in: "spiffe://cluster.local:8080/ns/ns1/sa/a", err: "trust domain"},
		{name: "wrong shape", in: "spiffe://cluster.local/ns/ns1/a", err: "path is not"},
		{name: "extra segment", in: "spiffe://cluster.local/ns/ns1/sa/a/b", err: "path is not"},
		{name: "swapped keys", in: "spiffe://cluster.local/sa/a/ns/ns1", err: "path is not"},
		{name: "query", in: "spiffe://cluster.local/ns/ns1/sa/a?x=1", err: ""},
		{name: "percent escape", in: "spiffe://cluster.local/ns/ns1/sa/%61", err: ""},
		{name: "upper-case namespace", in: "spiffe://cluster.local/ns/NS1/sa/a", err: "namespace"},
		{name: "namespace with dot", in: "spiffe://cluster.local/ns/a.b/sa/a", err: "namespace"},
		{name: "namespace too long", in: "spiffe://cluster.local/ns/" + strings.Repeat("a", 64) + "/sa/a", err: "longer than 63"},
		{name: "service account leading dash", in: "spiffe://cluster.local/ns/a/sa/-a", err: "service account"},
		{name: "NUL", in: "spiffe://cluster.local/ns/a/sa/a\x00b", err: "SPIFFE ID"},
		{name: "empty", in: "", err: "SPIFFE ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIdentity(tc.in)
			if tc.want != (Identity{}) {
				if err != nil || got != tc.want {
					t.Fatalf("ParseIdentity(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
				}
				if got.String() != tc.in {
					t.Errorf("String() = %q, want %q", got.String(), tc.in)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseIdentity(%q) = %v, want an error", tc.in, got)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not mention %q", err, tc.err)
			}
		})
	}
}

func TestIdentityFromCert(t *testing.T) {
	u := func(s ...string) []*url.URL {
		var out []*url.URL
		for _, x := range s {
			p, _ := url.Parse(x)
			out = append(out, p)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		err  string
	}{
		{name: "one SPIFFE URI", cert: &x509.Certificate{URIs: u(alice.String())}},
		{name: "no URI", cert: &x509.Certificate{DNSNames: []string{"a"}}, err: "0 URI SANs"},
		{name: "two URIs (D6)", cert: &x509.Certificate{URIs: u(alice.String(), "spiffe://cluster.local/ns/ns2/sa/b")}, err: "2 URI SANs"},
		{name: "non-SPIFFE URI (D6)", cert: &x509.Certificate{URIs: u("https://example.com/ns/a/sa/b")}, err: "scheme"},
		{name: "CA bit (D7)", cert: &x509.Certificate{IsCA: true, URIs: u(alice.String())}, err: "is a CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := IdentityFromCert(tc.cert)
			if tc.err == "" {
				if err != nil || id != alice {
					t.Fatalf("got %v, %v; want %v", id, err, alice)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, %v; want error containing %q", id, err, tc.err)
			}
		})
	}
}
