package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"
)

// maxChain bounds the certificates a CA response may carry.
const maxChain = 8

// credential says how a request proves the identity.
type credential int

const (
	byToken credential = iota // bootstrap token: first certificate, or no valid one left
	byCert                    // the current certificate over mutual TLS: renewal
)

func (c credential) String() string {
	if c == byCert {
		return "certificate"
	}
	return "bootstrap token"
}

// fetch asks the CA for a certificate for a fresh key and returns it with
// the root of the response, verified. It does not publish anything.
func (m *Manager) fetch(ctx context.Context, mat *material, how credential) (*tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{m.id}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating the CSR: %w", err)
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: m.cfg.ServerName,
		RootCAs:    caPool(mat),
	}
	if how == byCert {
		cert := mat.cert
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	} else {
		tok, err := readToken(m.cfg.TokenFile)
		if err != nil {
			return nil, nil, err
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	cc, err := grpc.NewClient(m.cfg.CAAddress, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, nil, fmt.Errorf("CA client for %s: %w", m.cfg.CAAddress, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	resp, err := pb.NewIstioCertificateServiceClient(cc).CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr:              string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		ValidityDuration: int64(m.cfg.TTL / time.Second),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("CreateCertificate at %s (by %s): %w", m.cfg.CAAddress, how, err)
	}
	leaf, chain, root, err := verifyResponse(resp.GetCertChain(), m.id.String(), key.Public(), anchors(mat), m.cfg.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("CA response from %s rejected: %w", m.cfg.CAAddress, err)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, root, nil
}

// anchors are what authenticates the CA and its responses: the root file
// and the current bundle.
func anchors(mat *material) []*x509.Certificate {
	return append(slices.Clone(mat.fileRoots), mat.roots...)
}

func caPool(mat *material) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range anchors(mat) {
		p.AddCert(c)
	}
	return p
}

// verifyResponse checks an untrusted cert_chain ([leaf, intermediates...,
// root], one or more PEM certificates per element) against the request:
// the leaf carries exactly the requested SPIFFE ID as its only URI SAN,
// is not a CA, holds the key that was sent, is valid at now, and
// verifies through the intermediates to one of trusted (the root file and
// the current bundle: the CA's word alone never adds a root) for client
// and server authentication. The last certificate is returned as root
// when it is one of trusted; chain holds the DER certificates to present
// (that root left out).
func verifyResponse(elements []string, wantID string, pub crypto.PublicKey, trusted []*x509.Certificate, now time.Time) (leaf *x509.Certificate, chain [][]byte, root *x509.Certificate, err error) {
	var certs []*x509.Certificate
	for i, e := range elements {
		rest := []byte(e)
		n := 0
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				return nil, nil, nil, fmt.Errorf("cert_chain[%d]: PEM block %q, want CERTIFICATE", i, b.Type)
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("cert_chain[%d]: %w", i, err)
			}
			certs = append(certs, c)
			if n++; len(certs) > maxChain {
				return nil, nil, nil, fmt.Errorf("cert_chain: more than %d certificates", maxChain)
			}
		}
		if n == 0 || len(bytes.TrimSpace(rest)) != 0 {
			return nil, nil, nil, fmt.Errorf("cert_chain[%d]: not PEM certificates", i)
		}
	}
	if len(certs) == 0 {
		return nil, nil, nil, errors.New("cert_chain is empty")
	}
	leaf = certs[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != wantID {
		got := make([]string, len(leaf.URIs))
		for i, u := range leaf.URIs {
			got[i] = u.String()
		}
		return nil, nil, nil, fmt.Errorf("leaf URI SANs %q, want exactly [%s]", got, wantID)
	}
	if leaf.IsCA {
		return nil, nil, nil, errors.New("leaf is a CA certificate")
	}
	// X.509-SVID leaf key usage: peers refuse a leaf that cannot sign the
	// handshake or that could sign certificates.
	if leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, nil, nil, errors.New("leaf key usage lacks digitalSignature")
	}
	if leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		return nil, nil, nil, errors.New("leaf key usage has keyCertSign or cRLSign")
	}
	if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(pub) {
		return nil, nil, nil, errors.New("leaf does not carry the key of the request")
	}
	roots := x509.NewCertPool()
	for _, c := range trusted {
		roots.AddCert(c)
	}
	if last := certs[len(certs)-1]; len(certs) > 1 && slices.ContainsFunc(trusted, last.Equal) {
		root = last
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// VerifyOptions.KeyUsages accepts a chain valid for any one of them:
	// client and server authentication are checked one at a time.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, nil, nil, fmt.Errorf("leaf does not verify for client authentication: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, nil, nil, fmt.Errorf("leaf is not valid for server authentication: %w", err)
	}
	for _, c := range certs {
		if root != nil && c == root {
			break
		}
		chain = append(chain, c.Raw)
	}
	return leaf, chain, root, nil
}

// readToken reads the bootstrap token file: one line.
func readToken(path string) (string, error) {
	b, err := readFile(path)
	if err != nil {
		return "", fmt.Errorf("bootstrap token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\r\n") {
		return "", fmt.Errorf("bootstrap token %s: want one non-empty line", path)
	}
	return tok, nil
}

// readFile reads at most maxFileBytes of path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileBytes)
	}
	return b, nil
}

// parseRoots reads a PEM bundle of CA certificates.
func parseRoots(path string) ([]*x509.Certificate, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("root certificates: %w", err)
	}
	var out []*x509.Certificate
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return nil, fmt.Errorf("root certificates %s: trailing data that is not PEM", path)
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("root certificates %s: certificate %d: %w", path, len(out)+1, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("root certificates %s: certificate %d (%s) is not a CA", path, len(out)+1, c.Subject)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("root certificates %s: no certificate", path)
	}
	return out, nil
}
