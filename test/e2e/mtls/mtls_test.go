//go:build linux

package mtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
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
		// The server's sidecar tells the app who called, as Istio's
		// inbound sidecars do (APPEND_FORWARD, Subject/URI/DNS): the
		// client sent none, so the header is the client sidecar's entry.
		xfcc, _ := m.server.app.xfcc.Load().(string)
		if !regexp.MustCompile(`^By=spiffe://cluster\.local/ns/default/sa/server;Hash=[0-9a-f]{64};Subject="";URI=spiffe://cluster\.local/ns/default/sa/client$`).MatchString(xfcc) {
			t.Errorf("app saw x-forwarded-client-cert %q, want By=<server SVID>;Hash=<sha256>;Subject=\"\";URI=<client SVID>", xfcc)
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

	t.Run("D1_StrictRefusesPlaintext", func(t *testing.T) {
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

	// D2–D4, D6–D8: raw TLS from the outsider (no sidecar) to the server's
	// sidecar under STRICT, each with one defect. Every refusal must come
	// before the app reads a byte.
	is, err := ca.LoadDir(m.cp.CADir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	good := svid{uris: []string{"spiffe://cluster.local/ns/default/sa/client"}, notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour)}
	// refused checks that the server's sidecar refuses cert, counting the
	// handshake failure under reason (the client only sees an alert).
	refused := func(t *testing.T, cert tls.Certificate, reason string) {
		t.Helper()
		m.requireStrict(t)
		before := m.server.app.bytes.Load()
		counted := m.handshakeFailures(t, reason)
		if code, body, err := m.tlsGet(t, cert); err == nil {
			t.Fatalf("accepted: %d %q", code, body)
		} else {
			t.Logf("refused: %v", err)
		}
		if n := m.server.app.bytes.Load() - before; n != 0 {
			t.Fatalf("the app read %d bytes of a refused connection", n)
		}
		m.waitCounted(t, reason, counted)
	}
	accepted := func(t *testing.T, cert tls.Certificate) {
		t.Helper()
		m.requireStrict(t)
		if code, body, err := m.tlsGet(t, cert); err != nil || code != 200 {
			t.Fatalf("refused: %d %q %v", code, body, err)
		}
	}

	// A well-formed certificate crafted the same way is accepted: the
	// refusals below are about their defects, not about the harness.
	t.Run("WellFormedClientCertificateAccepted", func(t *testing.T) {
		accepted(t, good.sign(t, is.Cert, is.Key))
	})

	t.Run("D2_ClientCertificateFromAnotherRoot", func(t *testing.T) {
		otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		refused(t, good.sign(t, selfSigned(t, otherKey), otherKey), "unknown_ca")
	})

	t.Run("D3_ExpiredOrNotYetValid", func(t *testing.T) {
		t.Run("expired leaf", func(t *testing.T) {
			refused(t, good.with(func(s *svid) { s.notBefore, s.notAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour) }).sign(t, is.Cert, is.Key), "certificate_expired")
		})
		t.Run("leaf not yet valid", func(t *testing.T) {
			refused(t, good.with(func(s *svid) { s.notBefore, s.notAfter = now.Add(24*time.Hour), now.Add(48*time.Hour) }).sign(t, is.Cert, is.Key), "certificate_expired")
		})
		// The leaf is valid; the intermediate between it and the mesh root
		// is not. Through a valid intermediate the same leaf is accepted.
		t.Run("valid intermediate accepted", func(t *testing.T) {
			inter, key := intermediate(t, is.Cert, is.Key, now.Add(-time.Hour), now.Add(time.Hour))
			accepted(t, good.with(func(s *svid) { s.chain = []*x509.Certificate{inter} }).sign(t, inter, key))
		})
		t.Run("expired intermediate", func(t *testing.T) {
			inter, key := intermediate(t, is.Cert, is.Key, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
			refused(t, good.with(func(s *svid) { s.chain = []*x509.Certificate{inter} }).sign(t, inter, key), "certificate_expired")
		})
		t.Run("intermediate not yet valid", func(t *testing.T) {
			inter, key := intermediate(t, is.Cert, is.Key, now.Add(24*time.Hour), now.Add(48*time.Hour))
			refused(t, good.with(func(s *svid) { s.chain = []*x509.Certificate{inter} }).sign(t, inter, key), "certificate_expired")
		})
	})

	t.Run("D4_OtherTrustDomainRefusedAliasAccepted", func(t *testing.T) {
		t.Run("another trust domain", func(t *testing.T) {
			refused(t, good.with(func(s *svid) { s.uris = []string{"spiffe://evil.example/ns/default/sa/client"} }).sign(t, is.Cert, is.Key), "san_mismatch")
		})
		// meshConfig.trustDomainAliases: old.example (newMesh).
		t.Run("trust domain alias", func(t *testing.T) {
			accepted(t, good.with(func(s *svid) { s.uris = []string{"spiffe://" + aliasTrustDomain + "/ns/default/sa/client"} }).sign(t, is.Cert, is.Key))
			framework.Eventually(t, propagation, func() error {
				out, err := metrics(m.server)
				if err != nil {
					return err
				}
				if !hasSample(out, "istio_requests_total", `reporter="destination"`,
					`source_principal="spiffe://`+aliasTrustDomain+`/ns/default/sa/client"`) {
					return fmt.Errorf("server sidecar has no request from the alias principal:\n%s", grep(out, "istio_requests_total"))
				}
				return nil
			})
		})
		t.Run("alias as a suffix", func(t *testing.T) {
			refused(t, good.with(func(s *svid) { s.uris = []string{"spiffe://evil" + aliasTrustDomain + "/ns/default/sa/client"} }).sign(t, is.Cert, is.Key), "san_mismatch")
		})
	})

	t.Run("D5_WrongServerIdentityRefused", func(t *testing.T) {
		m.setPeerAuthentication(t, "PERMISSIVE")
		before := m.payments.app.bytes.Load()
		code, body, err := plainGet(m.client, m.payments, host(m.payments))
		if err != nil || code != 503 {
			t.Fatalf("client → payments presenting sa/intruder: %d %q %v, want 503", code, body, err)
		}
		if n := m.payments.app.bytes.Load() - before; n != 0 {
			t.Fatalf("payments' app read %d bytes", n)
		}
		// The sidecar records a request after the client has its response.
		framework.Eventually(t, propagation, func() error {
			out, err := metrics(m.client)
			if err != nil {
				return err
			}
			if !hasSample(out, "istio_requests_total", `reporter="source"`, `response_code="503"`, `response_flags="UF`) {
				return fmt.Errorf("client sidecar did not report the refused upstream (UF):\n%s", grep(out, "istio_requests_total"))
			}
			return nil
		})
	})

	t.Run("D6_AmbiguousOrMalformedSAN", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			s      svid
			reason string
		}{
			{"two URI SANs", good.with(func(s *svid) {
				s.uris = []string{"spiffe://cluster.local/ns/default/sa/client", "spiffe://cluster.local/ns/default/sa/admin"}
			}), "bad_certificate"},
			{"SPIFFE and https URI SANs", good.with(func(s *svid) {
				s.uris = []string{"spiffe://cluster.local/ns/default/sa/client", "https://cluster.local/ns/default/sa/client"}
			}), "bad_certificate"},
			{"non-SPIFFE URI SAN", good.with(func(s *svid) { s.uris = []string{"https://cluster.local/ns/default/sa/client"} }), "san_mismatch"},
			{"NUL inside the SAN", good.with(func(s *svid) { s.rawURI = "spiffe://cluster.local/ns/default/sa/client\x00.evil.example" }), "bad_certificate"},
			{"percent-encoded NUL inside the SAN", good.with(func(s *svid) { s.uris = []string{"spiffe://cluster.local/ns/default/sa/client%00.evil.example"} }), "bad_certificate"},
			{"dot-dot segment", good.with(func(s *svid) { s.rawURI = "spiffe://cluster.local/ns/default/sa/client/../admin" }), "bad_certificate"},
		} {
			t.Run(tc.name, func(t *testing.T) { refused(t, tc.s.sign(t, is.Cert, is.Key), tc.reason) })
		}
	})

	t.Run("D7_LeafCAOrWithoutKeyUsage", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			s      svid
			reason string
		}{
			{"CA bit", good.with(func(s *svid) { s.isCA = true }), "bad_certificate"},
			{"keyCertSign without CA bit", good.with(func(s *svid) { s.keyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign }), "bad_certificate"},
			{"no digitalSignature", good.with(func(s *svid) { s.keyUsage = x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement }), "bad_certificate"},
			{"no clientAuth", good.with(func(s *svid) { s.extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} }), "bad_certificate"},
		} {
			t.Run(tc.name, func(t *testing.T) { refused(t, tc.s.sign(t, is.Cert, is.Key), tc.reason) })
		}
		// The X.509 rule: a leaf without extended key usage may be used for
		// anything.
		t.Run("no extended key usage accepted", func(t *testing.T) {
			accepted(t, good.with(func(s *svid) { s.extKeyUsage = []x509.ExtKeyUsage{} }).sign(t, is.Cert, is.Key))
		})
	})

	t.Run("D8_WeakProtocolOrCiphers", func(t *testing.T) {
		m.d8(t, good.sign(t, is.Cert, is.Key))
	})

	t.Run("HandshakeFailuresCounted", func(t *testing.T) {
		out, err := metrics(m.server)
		if err != nil {
			t.Fatal(err)
		}
		for _, reason := range []string{"unknown_ca", "certificate_expired", "san_mismatch", "bad_certificate", "protocol_version", "no_shared_cipher"} {
			if !hasSample(out, "trellis_listener_tls_handshake_failures_total", `reason="`+reason+`"`) {
				t.Errorf("no handshake failure counted with reason %s:\n%s", reason, grep(out, "trellis_listener_tls_handshake_failures_total"))
			}
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

// handshakeFailures is the server sidecar's count of inbound TLS
// handshake failures with reason, summed over listeners.
func (m *mesh) handshakeFailures(t *testing.T, reason string) float64 {
	t.Helper()
	out, err := metrics(m.server)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "trellis_listener_tls_handshake_failures_total{") || !strings.Contains(line, `reason="`+reason+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// waitCounted waits until the server sidecar counts more handshake
// failures with reason than before.
func (m *mesh) waitCounted(t *testing.T, reason string, before float64) {
	t.Helper()
	framework.Eventually(t, propagation, func() error {
		if n := m.handshakeFailures(t, reason); n <= before {
			return fmt.Errorf("no new handshake failure counted with reason %s (still %v)", reason, n)
		}
		return nil
	})
}

// requireStrict makes the namespace STRICT (a no-op when it is) and waits
// until the server's sidecar applies it.
func (m *mesh) requireStrict(t *testing.T) {
	t.Helper()
	if m.mode != "STRICT" {
		m.setPeerAuthentication(t, "STRICT")
	}
	m.waitPlaintextRefused(t)
}

// tlsGet connects from the outsider to the server's app port with cert as
// client certificate, offering the mesh's ALPN, and sends one request. The
// handshake or the first read fails when the server's sidecar refuses the
// certificate (TLS 1.3 reports a client certificate refusal on read).
func (m *mesh) tlsGet(t *testing.T, cert tls.Certificate) (int, string, error) {
	t.Helper()
	return m.tlsGetWith(t, cert, nil)
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
