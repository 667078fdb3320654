//go:build linux

package security

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	pb "istio.io/api/security/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	"github.com/trellismesh/trellis/internal/discovery"
	"github.com/trellismesh/trellis/internal/testing/runready"
	"github.com/trellismesh/trellis/internal/xds/server"
	"github.com/trellismesh/trellis/test/framework"
)

// cpServerName is the name the secure port's certificate carries and
// Istio's agents dial.
const cpServerName = "istiod.istio-system.svc"

// cpWait bounds every wait of TestControlPlane.
const cpWait = 20 * time.Second

// controlPlane is `trellis discovery` in the test process: plaintext xDS,
// the secure port (CA and xDS over mutual TLS) and the monitoring port,
// which listens on every address so that E9 can reach it from another
// network namespace.
type controlPlane struct {
	srv   *discovery.Server
	dir   string
	caDir string
	roots *x509.CertPool
	mon   string // 127.0.0.1:<monitoring port>
}

func startControlPlane(t *testing.T) *controlPlane {
	t.Helper()
	cp := &controlPlane{dir: t.TempDir(), caDir: filepath.Join(t.TempDir(), "ca")}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("TRELLIS_E2E_LOGS") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := discovery.New(discovery.Config{
		ConfigDir:         cp.dir,
		XDSAddress:        "127.0.0.1:0",
		SecureGRPCAddress: "127.0.0.1:0",
		CADir:             cp.caDir,
		MonitoringAddress: "0.0.0.0:0",
		Debounce:          10 * time.Millisecond,
		FileDebounce:      20 * time.Millisecond,
		Logger:            logger,
	})
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	runready.Start(t, srv, cpWait, "control plane")
	cp.srv = srv
	is, err := ca.LoadDir(cp.caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cp.roots = is.Trusted.Pool()
	_, port, _ := net.SplitHostPort(srv.MonitoringAddr().String())
	cp.mon = net.JoinHostPort("127.0.0.1", port)
	return cp
}

// write puts a configuration file into the watched directory.
func (cp *controlPlane) write(t *testing.T, name, content string) {
	t.Helper()
	framework.WriteFileAtomic(t, filepath.Join(cp.dir, name), content)
}

func (cp *controlPlane) remove(t *testing.T, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(cp.dir, name)); err != nil {
		t.Fatal(err)
	}
}

// issue gets a workload certificate for ns/sa from the CA on the secure
// port, as a proxy's first request does: a bootstrap token, a CSR, the
// chain back.
func (cp *controlPlane) issue(t *testing.T, ns, sa string) tls.Certificate {
	t.Helper()
	token, _, err := bootstrap.Mint(filepath.Join(cp.caDir, "bootstrap"), ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	resp, err := cp.createCertificate(t, token, key)
	if err != nil {
		t.Fatalf("CreateCertificate for %s/%s: %v", ns, sa, err)
	}
	var cert tls.Certificate
	for _, c := range resp.GetCertChain()[:len(resp.GetCertChain())-1] { // without the root
		b, _ := pem.Decode([]byte(c))
		if b == nil {
			t.Fatalf("certificate chain entry is not PEM: %q", c)
		}
		cert.Certificate = append(cert.Certificate, b.Bytes)
	}
	cert.PrivateKey = key
	return cert
}

func (cp *controlPlane) createCertificate(t *testing.T, token string, key *ecdsa.PrivateKey) (*pb.IstioCertificateResponse, error) {
	t.Helper()
	cc := cp.secureConn(t, nil)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), cpWait)
	defer cancel()
	return pb.NewIstioCertificateServiceClient(cc).CreateCertificate(ctx, &pb.IstioCertificateRequest{
		Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})),
	})
}

// secureConn is a gRPC connection to the secure port, verifying it with
// the mesh roots, presenting cert when given.
func (cp *controlPlane) secureConn(t *testing.T, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	tc := &tls.Config{RootCAs: cp.roots, ServerName: cpServerName, MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	cc, err := grpc.NewClient(cp.srv.SecureGRPCAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func (cp *controlPlane) plainConn(t *testing.T) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(cp.srv.XDSAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// dialTLS opens a raw TLS connection to the secure port speaking h2.
func (cp *controlPlane) dialTLS(cert *tls.Certificate) (net.Conn, error) {
	tc := &tls.Config{RootCAs: cp.roots, ServerName: cpServerName, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2"}}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{Timeout: cpWait}
	return tls.DialWithDialer(d, "tcp", cp.srv.SecureGRPCAddr().String(), tc)
}

// xdsNode is a sidecar node in ns whose metadata claims service account sa
// (none if empty).
func xdsNode(pod, ns, sa string) *core.Node {
	md := map[string]any{"NAMESPACE": ns}
	if sa != "" {
		md["SERVICE_ACCOUNT"] = sa
	}
	st, _ := structpb.NewStruct(md)
	return &core.Node{Id: "sidecar~10.1.0.7~" + pod + "." + ns + "~" + ns + ".svc.cluster.local", Metadata: st}
}

// sotw is a state-of-the-world ADS stream.
type sotw struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[discoverypb.DiscoveryRequest, discoverypb.DiscoveryResponse]
}

func openSotw(t *testing.T, cc *grpc.ClientConn) *sotw {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cpWait)
	t.Cleanup(cancel)
	s, err := discoverypb.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return &sotw{t: t, stream: s}
}

// ask sends a request and returns the next response (or the stream's error).
func (s *sotw) ask(req *discoverypb.DiscoveryRequest) (*discoverypb.DiscoveryResponse, error) {
	if err := s.stream.Send(req); err != nil {
		return nil, err
	}
	return s.stream.Recv()
}

// metric scrapes the control plane's /metrics from loopback and returns
// the value of the sample name{labels} (0 when absent).
func (cp *controlPlane) metric(t *testing.T, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + cp.mon + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && name == sample {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return v
		}
	}
	return 0
}

// syncz returns /debug/syncz, read from loopback.
func (cp *controlPlane) syncz(t *testing.T) []server.SyncStatus {
	t.Helper()
	resp, err := http.Get("http://" + cp.mon + "/debug/syncz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /debug/syncz from loopback: %d %s", resp.StatusCode, b)
	}
	var out []server.SyncStatus
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("syncz: %v: %s", err, b)
	}
	return out
}

// serviceEntry is a ServiceEntry with one HTTP port and one static
// endpoint, in namespace ns.
func serviceEntry(name, ns, host string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: %s
  namespace: %s
spec:
  hosts:
  - %s
  location: MESH_INTERNAL
  ports:
  - number: 8080
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 10.9.0.1
`, name, ns, host)
}
