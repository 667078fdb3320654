package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// MaxCSRBytes is the default limit on a PEM CSR. An RSA-4096 CSR is under
// 2 KiB; the limit leaves room for extensions without letting a caller make
// the CA parse megabytes.
const MaxCSRBytes = 16 << 10

const csrBlockType = "CERTIFICATE REQUEST"

// ParseCSR parses and checks an untrusted PEM certificate signing request:
// at most maxBytes (MaxCSRBytes when <= 0), exactly one "CERTIFICATE
// REQUEST" block and nothing else but whitespace, a valid self-signature
// with SHA-256 or stronger, and an allowed key (see CheckPublicKey). Only
// the public key of the result is used for issuance: its subject and SANs
// are ignored. Every failure is a *RequestError.
func ParseCSR(pemBytes []byte, maxBytes int) (*x509.CertificateRequest, error) {
	if maxBytes <= 0 {
		maxBytes = MaxCSRBytes
	}
	if len(pemBytes) == 0 {
		return nil, csrError("empty")
	}
	if len(pemBytes) > maxBytes {
		return nil, csrError("%d bytes, above the %d-byte limit", len(pemBytes), maxBytes)
	}
	trimmed := bytes.TrimSpace(pemBytes)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		if !bytes.Contains(trimmed, []byte("-----BEGIN ")) {
			return nil, csrError("no PEM block found")
		}
		return nil, csrError("data before the PEM block")
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, csrError("no PEM block found")
	}
	if block.Type != csrBlockType {
		return nil, csrError("PEM block is %q, want %q", block.Type, csrBlockType)
	}
	if len(block.Headers) != 0 {
		return nil, csrError("PEM block has headers")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		if next, _ := pem.Decode(rest); next != nil {
			return nil, csrError("more than one PEM block (second is %q)", next.Type)
		}
		return nil, csrError("trailing data after the PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, csrError("not a valid PKCS#10 request: %v", err)
	}
	switch csr.SignatureAlgorithm {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
	default:
		return nil, csrError("signature algorithm %v not allowed (SHA-256 or stronger with RSA or ECDSA)", csr.SignatureAlgorithm)
	}
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, csrError("%v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, csrError("bad signature: %v", err)
	}
	return csr, nil
}

// CheckPublicKey allows ECDSA P-256 and P-384 and RSA keys of 2048 to 4096
// bits: what Envoy, Go and rustls all verify, and nothing weaker.
func CheckPublicKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return fmt.Errorf("ECDSA curve %s not allowed (P-256 or P-384)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 4096 {
			return fmt.Errorf("RSA key of %d bits not allowed (2048 to 4096)", n)
		}
		return nil
	case nil:
		return fmt.Errorf("no public key")
	default:
		return fmt.Errorf("key type %T not allowed (ECDSA P-256/P-384 or RSA 2048-4096)", pub)
	}
}
