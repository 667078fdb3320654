package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
)

// keys are generated once per name: RSA generation is slow.
var (
	keysMu sync.Mutex
	keys   = map[string]crypto.Signer{}
)

func testKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if k, ok := keys[name]; ok {
		return k
	}
	var k crypto.Signer
	var err error
	switch name {
	case "p224":
		k, err = ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		k, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "rsa1024":
		k, err = rsa.GenerateKey(rand.Reader, 1024)
	case "rsa2048":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa4096":
		k, err = rsa.GenerateKey(rand.Reader, 4096)
	case "rsa4160":
		k, err = rsa.GenerateKey(rand.Reader, 4160)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown test key %q", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	keys[name] = k
	return k
}

func TestParseCSR(t *testing.T) {
	k := func(name string) crypto.Signer { return testKey(t, name) }
	good := mkCSR(t, k("p256"), []string{alice.String()})
	block, _ := pem.Decode(good)
	badSig := bytes.Clone(block.Bytes)
	badSig[len(badSig)-3] ^= 0xff
	sha1CSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{SignatureAlgorithm: x509.SHA1WithRSA}, k("rsa2048"))
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	for _, tc := range []struct {
		name string
		in   []byte
		err  string // "" = accepted
	}{
		{name: "P-256", in: good},
		{name: "P-384", in: mkCSR(t, k("p384"), nil)},
		{name: "RSA 2048", in: mkCSR(t, k("rsa2048"), nil)},
		{name: "RSA 4096", in: mkCSR(t, k("rsa4096"), nil)},
		{name: "surrounding whitespace", in: append(append([]byte("\n  "), good...), "\n\n"...)},
		{name: "asks for other identities and DNS (parsed; ignored at issuance)", in: mkCSR(t, k("p256"), []string{"spiffe://cluster.local/ns/ns2/sa/admin", "spiffe://x/y"}, "admin.example")},
		{name: "P-224", in: mkCSR(t, k("p224"), nil), err: "curve"},
		{name: "P-521", in: mkCSR(t, k("p521"), nil), err: "P-521 not allowed"},
		{name: "RSA 1024", in: mkCSR(t, k("rsa1024"), nil), err: "1024 bits not allowed"},
		{name: "RSA 4160", in: mkCSR(t, k("rsa4160"), nil), err: "4160 bits not allowed"},
		{name: "Ed25519", in: mkCSR(t, k("ed25519"), nil), err: "not allowed"},
		{name: "SHA-1 signature", in: enc("CERTIFICATE REQUEST", sha1CSR), err: "signature algorithm"},
		{name: "bad signature", in: enc("CERTIFICATE REQUEST", badSig), err: "bad signature"},
		{name: "empty", in: nil, err: "empty"},
		{name: "garbage", in: []byte("hello, CA"), err: "no PEM block"},
		{name: "garbage before the block", in: append([]byte("junk\n"), good...), err: "data before"},
		{name: "wrong block type", in: enc("CERTIFICATE", block.Bytes), err: `"CERTIFICATE"`},
		{name: "two CSR blocks", in: append(bytes.Clone(good), good...), err: "more than one PEM block"},
		{name: "trailing garbage", in: append(bytes.Clone(good), "trailing"...), err: "trailing data"},
		{name: "PEM headers", in: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: block.Bytes}), err: "headers"},
		{name: "not DER", in: enc("CERTIFICATE REQUEST", []byte{0x30, 0x03, 0x02, 0x01}), err: "not a valid PKCS#10"},
		{name: "oversized (E3)", in: append(bytes.Clone(good), bytes.Repeat([]byte(" "), MaxCSRBytes)...), err: "above the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(tc.in, 0)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("ParseCSR: %v", err)
				}
				if csr.PublicKey == nil {
					t.Fatal("no public key")
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseCSR accepted %s", tc.name)
			}
			var re *RequestError
			if !errors.As(err, &re) || re.Field != "csr" {
				t.Errorf("error %v is not a csr RequestError", err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q does not mention %q", err, tc.err)
			}
		})
	}
}

func TestParseCSRLimit(t *testing.T) {
	good := mkCSR(t, ecKey(t), nil)
	if _, err := ParseCSR(good, len(good)); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := ParseCSR(good, len(good)-1); err == nil {
		t.Fatal("one byte over the limit was accepted")
	}
}
