//go:build linux

package mtls

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/test/framework"
)

func TestMTLS(t *testing.T) {
	m := newMesh(t)

	t.Run("MeshedTrafficIsMutualTLS", func(t *testing.T) {
		m.setPeerAuthentication(t, "PERMISSIVE")
		code, body, err := plainGet(m.client, m.server, host(m.server))
		if err != nil || code != 200 {
			t.Fatalf("client → server: %d %q %v", code, body, err)
		}
		if body != "server 127.0.0.6" {
			t.Fatalf("server saw %q, want its inbound sidecar (127.0.0.6)", body)
		}
		framework.Eventually(t, propagation, func() error {
			out, err := metrics(m.server)
			if err != nil {
				return err
			}
			if !hasSample(out, "istio_requests_total", `reporter="destination"`, `connection_security_policy="mutual_tls"`,
				`source_principal="spiffe://cluster.local/ns/default/sa/client"`,
				`destination_principal="spiffe://cluster.local/ns/default/sa/server"`) {
				return fmt.Errorf("server sidecar has no mutual_tls request from the client's principal:\n%s", grep(out, "istio_requests_total"))
			}
			return nil
		})
		// The client's sidecar names the server by the SPIFFE ID its
		// upstream handshake verified; the source side leaves the policy
		// unknown, as Istio does.
		framework.Eventually(t, propagation, func() error {
			out, err := metrics(m.client)
			if err != nil {
				return err
			}
			if !hasSample(out, "istio_requests_total", `reporter="source"`, `connection_security_policy="unknown"`,
				`destination_principal="spiffe://cluster.local/ns/default/sa/server"`) {
				return fmt.Errorf("client sidecar has no source request to the server's principal:\n%s", grep(out, "istio_requests_total"))
			}
			return nil
		})
	})

	t.Run("StrictRefusesPlaintext", func(t *testing.T) {
		m.setPeerAuthentication(t, "STRICT")
		m.waitPlaintextRefused(t)
		before := m.server.app.bytes.Load()
		if code, body, err := plainGet(m.outsider, m.server, host(m.server)); err == nil {
			t.Fatalf("plaintext under STRICT answered: %d %q", code, body)
		}
		if n := m.server.app.bytes.Load() - before; n != 0 {
			t.Fatalf("the app read %d bytes of a refused plaintext connection", n)
		}
		// Mesh traffic goes on.
		if code, body, err := plainGet(m.client, m.server, host(m.server)); err != nil || code != 200 {
			t.Fatalf("client → server under STRICT: %d %q %v", code, body, err)
		}
	})

	t.Run("PermissiveAcceptsBoth", func(t *testing.T) {
		m.setPeerAuthentication(t, "PERMISSIVE")
		framework.Eventually(t, propagation, func() error {
			code, body, err := plainGet(m.outsider, m.server, host(m.server))
			if err != nil || code != 200 || body != "server 127.0.0.6" {
				return fmt.Errorf("plaintext from outsider: %d %q %v", code, body, err)
			}
			return nil
		})
		if code, body, err := plainGet(m.client, m.server, host(m.server)); err != nil || code != 200 {
			t.Fatalf("client → server under PERMISSIVE: %d %q %v", code, body, err)
		}
	})

	t.Run("RefusedClientCertificates", func(t *testing.T) {
		m.setPeerAuthentication(t, "STRICT")
		m.waitPlaintextRefused(t)
		is, err := ca.LoadDir(m.cp.CADir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		otherRoot := selfSigned(t, otherKey)
		now := time.Now()
		good := svid{uris: []string{"spiffe://cluster.local/ns/default/sa/client"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)}
		// A well-formed certificate crafted the same way is accepted: the
		// refusals below are about the defects, not about the harness.
		if code, body, err := m.tlsGet(t, good.sign(t, is.Cert, is.Key)); err != nil || code != 200 {
			t.Fatalf("well-formed client certificate: %d %q %v", code, body, err)
		}
		cases := []struct {
			name string
			cert tls.Certificate
		}{
			{"another root", good.sign(t, otherRoot, otherKey)},
			{"expired", good.with(func(s *svid) { s.notBefore, s.notAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour) }).sign(t, is.Cert, is.Key)},
			{"not yet valid", good.with(func(s *svid) { s.notBefore, s.notAfter = now.Add(24*time.Hour), now.Add(48*time.Hour) }).sign(t, is.Cert, is.Key)},
			{"another trust domain", good.with(func(s *svid) { s.uris = []string{"spiffe://evil.example/ns/default/sa/client"} }).sign(t, is.Cert, is.Key)},
			{"two URI SANs", good.with(func(s *svid) {
				s.uris = []string{"spiffe://cluster.local/ns/default/sa/client", "spiffe://cluster.local/ns/default/sa/admin"}
			}).sign(t, is.Cert, is.Key)},
			{"CA bit", good.with(func(s *svid) { s.isCA = true }).sign(t, is.Cert, is.Key)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := m.server.app.bytes.Load()
				if code, body, err := m.tlsGet(t, tc.cert); err == nil {
					t.Fatalf("accepted: %d %q", code, body)
				}
				if n := m.server.app.bytes.Load() - before; n != 0 {
					t.Fatalf("the app read %d bytes of a refused connection", n)
				}
			})
		}
		out, err := metrics(m.server)
		if err != nil {
			t.Fatal(err)
		}
		for _, reason := range []string{"unknown_ca", "certificate_expired", "san_mismatch", "bad_certificate"} {
			if !hasSample(out, "trellis_listener_tls_handshake_failures_total", `reason="`+reason+`"`) {
				t.Errorf("no handshake failure counted with reason %s:\n%s", reason, grep(out, "trellis_listener_tls_handshake_failures_total"))
			}
		}
	})

	t.Run("WrongServerIdentityRefused", func(t *testing.T) {
		m.setPeerAuthentication(t, "PERMISSIVE")
		before := m.payments.app.bytes.Load()
		code, body, err := plainGet(m.client, m.payments, host(m.payments))
		if err != nil || code != 503 {
			t.Fatalf("client → payments presenting sa/intruder: %d %q %v, want 503", code, body, err)
		}
		if n := m.payments.app.bytes.Load() - before; n != 0 {
			t.Fatalf("payments' app read %d bytes", n)
		}
		out, err := metrics(m.client)
		if err != nil {
			t.Fatal(err)
		}
		if !hasSample(out, "istio_requests_total", `reporter="source"`, `response_code="503"`, `response_flags="UF`) {
			t.Errorf("client sidecar did not report the refused upstream (UF):\n%s", grep(out, "istio_requests_total"))
		}
	})

	t.Run("WorkloadGetsOnlyItsOwnIdentity", func(t *testing.T) {
		is, err := ca.LoadDir(m.cp.CADir, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		token, err := readFile(m.client.tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(m.secure, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: is.Trusted.Pool(), ServerName: serverName, MinVersion: tls.VersionTLS12,
		})))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		want, _ := url.Parse("spiffe://cluster.local/ns/default/sa/server")
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{want}}, key)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		resp, err := pb.NewIstioCertificateServiceClient(cc).CreateCertificate(ctx, &pb.IstioCertificateRequest{
			Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		})
		if err != nil {
			t.Fatalf("CreateCertificate: %v", err)
		}
		b, _ := pem.Decode([]byte(resp.GetCertChain()[0]))
		if b == nil {
			t.Fatal("no PEM certificate in the response")
		}
		leaf, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/client" {
			t.Fatalf("issued %v for a CSR asking %s with client's token, want only client's identity", leaf.URIs, want)
		}
	})
}

// waitPlaintextRefused waits until the server's sidecar refuses plaintext
// from the outsider (STRICT applied).
func (m *mesh) waitPlaintextRefused(t *testing.T) {
	t.Helper()
	framework.Eventually(t, propagation, func() error {
		if code, body, err := plainGet(m.outsider, m.server, host(m.server)); err == nil {
			return fmt.Errorf("plaintext still answered: %d %q", code, body)
		}
		return nil
	})
}

// tlsGet connects from the outsider to the server's app port with cert as
// client certificate, offering the mesh's ALPN, and sends one request. The
// handshake or the first read fails when the server's sidecar refuses the
// certificate (TLS 1.3 reports a client certificate refusal on read).
func (m *mesh) tlsGet(t *testing.T, cert tls.Certificate) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := m.outsider.ns.DialContext(ctx, "tcp", netip.AddrPortFrom(m.server.ns.Addr, appPort).String())
	if err != nil {
		return 0, "", err
	}
	c := tls.Client(raw, &tls.Config{
		Certificates: []tls.Certificate{cert},
		// Only the server's refusal of the client is tested here.
		InsecureSkipVerify: true,
		NextProtos:         []string{"istio-http/1.1", "istio", "http/1.1"},
	})
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return 0, "", fmt.Errorf("handshake: %w", err)
	}
	return get(c, host(m.server))
}

// svid describes a client certificate to craft.
type svid struct {
	uris                []string
	notBefore, notAfter time.Time
	isCA                bool
}

func (s svid) with(f func(*svid)) svid { f(&s); return s }

func (s svid) sign(t *testing.T, parent *x509.Certificate, parentKey crypto.Signer) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  s.isCA,
	}
	if s.isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	for _, u := range s.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func selfSigned(t *testing.T, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"cluster.local"}, CommonName: "another root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New(path + " is empty")
	}
	return s, nil
}

// grep keeps the lines of body that contain s.
func grep(body, s string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, s) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
