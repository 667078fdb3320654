package discovery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/testing/runready"
	"github.com/trellismesh/trellis/internal/xds"
)

// meshCert issues a workload certificate with issuer is for id, signed
// directly (what the CA would issue to that identity).
func meshCert(t *testing.T, is *ca.Issuer, id ca.Identity) tls.Certificate {
	t.Helper()
	a, err := ca.New(ca.Config{Issuer: is, TrustDomain: id.TrustDomain})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	iss, err := a.Issue(ca.Request{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: iss.Chain[:len(iss.Chain)-1], PrivateKey: key, Leaf: iss.Cert}
}

// secureADS opens a state-of-the-world stream on the secure port with
// cert as the client certificate (nil: none), sends one CDS request for
// the node and returns the first response or the stream's error.
func secureADS(t *testing.T, s *Server, roots *x509.CertPool, cert *tls.Certificate, node *core.Node) (*discoverypb.DiscoveryResponse, error) {
	t.Helper()
	tc := &tls.Config{RootCAs: roots, ServerName: "istiod.istio-system.svc", MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(s.SecureGRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stream, err := discoverypb.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&discoverypb.DiscoveryRequest{Node: node, TypeUrl: xds.ClusterType}); err != nil {
		return nil, err
	}
	return stream.Recv()
}

func sidecarNode(ns, sa string) *core.Node {
	md := map[string]any{"NAMESPACE": ns}
	if sa != "" {
		md["SERVICE_ACCOUNT"] = sa
	}
	st, _ := structpb.NewStruct(md)
	return &core.Node{Id: "sidecar~10.0.0.9~app-0." + ns + "~" + ns + ".svc.cluster.local", Metadata: st}
}

// TestSecureADS serves xDS on the secure port to real grpc-go clients:
// only a mesh certificate of the CA's roots and trust domain gets
// configuration, and only for the identity it carries.
func TestSecureADS(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	s := runCA(t, caDir)
	is, err := ca.LoadDir(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := is.Trusted.Pool()
	td := "cluster.local"
	good := meshCert(t, is, ca.Identity{TrustDomain: td, Namespace: "ns1", ServiceAccount: "a"})
	other, err := ca.NewSelfSigned(ca.SelfSigned{TrustDomain: td}, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherRoot := meshCert(t, other, ca.Identity{TrustDomain: td, Namespace: "ns1", ServiceAccount: "a"})
	otherTD := meshCert(t, is, ca.Identity{TrustDomain: "other.example", Namespace: "ns1", ServiceAccount: "a"})

	cases := []struct {
		name string
		cert *tls.Certificate
		node *core.Node
		code codes.Code
		msg  string // part of the status message
	}{
		{"own identity", &good, sidecarNode("ns1", "a"), codes.OK, ""},
		{"service account from the certificate", &good, sidecarNode("ns1", ""), codes.OK, ""},
		{"no client certificate", nil, sidecarNode("ns1", "a"), codes.Unauthenticated, "requires a mesh client certificate"},
		{"certificate from another root", &otherRoot, sidecarNode("ns1", "a"), codes.Unauthenticated, "client certificate not accepted"},
		{"certificate from another trust domain", &otherTD, sidecarNode("ns1", "a"), codes.Unauthenticated, "trust domain"},
		{"metadata claims another namespace", &good, sidecarNode("ns2", "a"), codes.PermissionDenied, `namespace "ns2"`},
		{"metadata claims another service account", &good, sidecarNode("ns1", "b"), codes.PermissionDenied, `SERVICE_ACCOUNT "b"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := secureADS(t, s, roots, tc.cert, tc.node)
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			if tc.code == codes.OK {
				if resp.GetTypeUrl() != xds.ClusterType {
					t.Fatalf("response of type %q", resp.GetTypeUrl())
				}
				return
			}
			if !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("message %q does not say %q", status.Convert(err).Message(), tc.msg)
			}
		})
	}
	// The plaintext port keeps serving without a certificate (local use).
	c := dialADS(t, s)
	c.send(&discoverypb.DiscoveryRequest{Node: &core.Node{Id: sidecarID}, TypeUrl: xds.ClusterType})
	if r := c.recv(); r.GetTypeUrl() != xds.ClusterType {
		t.Fatalf("plaintext response of type %q", r.GetTypeUrl())
	}
}

// TestSecureOnly disables the plaintext port: the control plane serves xDS
// on the secure port only, and refuses to start with no xDS port at all.
func TestSecureOnly(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.XDSAddress = "-"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "no xDS port") {
		t.Fatalf("New without any xDS port = %v", err)
	}
	caDir := filepath.Join(t.TempDir(), "ca")
	cfg.SecureGRPCAddress = "127.0.0.1:0"
	cfg.CADir = caDir
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer runready.Start(t, s, waitFor, "")()
	if s.XDSAddr() != nil {
		t.Fatalf("plaintext xDS listening on %v", s.XDSAddr())
	}
	is, err := ca.LoadDir(caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert := meshCert(t, is, ca.Identity{TrustDomain: "cluster.local", Namespace: "ns1", ServiceAccount: "a"})
	if _, err := secureADS(t, s, is.Trusted.Pool(), &cert, sidecarNode("ns1", "a")); err != nil {
		t.Fatalf("secure xDS: %v", err)
	}
}
