package ca

import (
	"crypto/rand"
	"crypto/rsa"
	"testing"
)

// BenchmarkIssue measures one workload certificate (CSR parse and check,
// signing) under a self-signed ECDSA P-256 root, Trellis' default, and an
// RSA 2048 root, Istio's default.
func BenchmarkIssue(b *testing.B) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	rsaRoot := mkCA(b, nil, caSpec{key: rsaKey})
	rsaIssuer, err := ParseIssuer("mem", PEMFiles{Cert: pemCerts(rsaRoot.cert), Key: pemKey(b, rsaKey), Root: pemCerts(rsaRoot.cert)}, t0)
	if err != nil {
		b.Fatal(err)
	}
	ecIssuer, err := NewSelfSigned(SelfSigned{TrustDomain: "cluster.local"}, t0, nil)
	if err != nil {
		b.Fatal(err)
	}
	csr := mkCSR(b, ecKey(b), nil)
	for _, tc := range []struct {
		name string
		is   *Issuer
	}{{"root=ecdsa-p256", ecIssuer}, {"root=rsa-2048", rsaIssuer}} {
		a, err := New(Config{Issuer: tc.is, TrustDomain: "cluster.local", Now: fixedNow})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Issue(Request{CSR: csr, Identity: alice}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
