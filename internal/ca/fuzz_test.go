package ca

import (
	"bytes"
	"crypto/x509"
	"errors"
	"testing"
)

// FuzzParseCSR: untrusted CSR bytes never panic, every refusal is a
// *RequestError, and whatever is accepted has an allowed key and a valid
// signature.
func FuzzParseCSR(f *testing.F) {
	good := mkCSR(f, ecKey(f), []string{"spiffe://cluster.local/ns/ns2/sa/admin"}, "x")
	f.Add(good)
	f.Add(append(bytes.Clone(good), good...))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data, 0)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("refusal is not a RequestError: %v", err)
			}
			return
		}
		if err := CheckPublicKey(csr.PublicKey); err != nil {
			t.Fatalf("accepted a disallowed key: %v", err)
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a bad signature: %v", err)
		}
	})
}

// FuzzIssue: whatever the CSR, an issued certificate carries exactly the
// proven identity and no other SAN, and is not a CA.
func FuzzIssue(f *testing.F) {
	a := selfSigned(f)
	f.Add(mkCSR(f, ecKey(f), []string{"spiffe://cluster.local/ns/ns2/sa/admin"}, "admin.example"))
	f.Fuzz(func(t *testing.T, data []byte) {
		iss, err := a.Issue(Request{CSR: data, Identity: alice})
		if err != nil {
			return
		}
		c := iss.Cert
		if c.IsCA || len(c.URIs) != 1 || c.URIs[0].String() != alice.String() || len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0 {
			t.Fatalf("issued a certificate with CA=%v URIs=%v DNS=%v", c.IsCA, c.URIs, c.DNSNames)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: a.Roots().Pool(), CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzParseIdentity: parsing never panics and round-trips what it accepts.
func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{alice.String(), "spiffe://td/ns/a/sa/b.c", "spiffe://td/ns//sa/b", "spiffe://td/ns/a/sa/b/../c", "spiffe://t%64/ns/a/sa/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("ParseIdentity(%q).String() = %q", s, id.String())
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("accepted an invalid identity %q: %v", s, err)
		}
	})
}
