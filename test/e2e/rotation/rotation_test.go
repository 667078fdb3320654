package rotation

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/internal/dataplane/secrets"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock/tlstest"
	"github.com/trellismesh/trellis/internal/discovery"
	"github.com/trellismesh/trellis/internal/testing/runready"
	"github.com/trellismesh/trellis/test/framework"
)

const (
	trustDomain = "cluster.local"
	certTTL     = 20 * time.Second
	serverID    = "spiffe://cluster.local/ns/default/sa/server"
)

// The control plane's configuration: the two workloads as a service and
// its endpoint, with STRICT mutual TLS in the namespace.
const meshYAML = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-1, namespace: default}
spec: {address: %s, labels: {app: server, security.istio.io/tlsMode: istio}, serviceAccount: server}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
`

// loopback returns two distinct 127/8 addresses for this process.
func loopback() (string, string) {
	pid := os.Getpid()
	base := fmt.Sprintf("127.%d.%d.", 50+pid%100, (pid/100)%250+1)
	n := time.Now().Nanosecond()%120 + 2
	return base + fmt.Sprint(n), base + fmt.Sprint(n+1)
}

type mesh struct {
	caDir  string
	cp     *discovery.Server
	client *sidecar.Sidecar
	server *sidecar.Sidecar
}

func startMesh(t *testing.T) *mesh {
	t.Helper()
	m := &mesh{caDir: filepath.Join(t.TempDir(), "ca")}
	cfgDir := t.TempDir()
	clientIP, serverIP := loopback()
	if err := os.WriteFile(filepath.Join(cfgDir, "mesh.yaml"), fmt.Appendf(nil, meshYAML, serverIP), 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cp, err := discovery.New(discovery.Config{
		ConfigDir: cfgDir, XDSAddress: "127.0.0.1:0", MonitoringAddress: "-",
		SecureGRPCAddress: "127.0.0.1:0", CADir: m.caDir, TrustDomain: trustDomain,
		Debounce: 10 * time.Millisecond, FileDebounce: 20 * time.Millisecond, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.cp = cp
	runready.Start(t, cp, 20*time.Second, "control plane")
	m.client = startSidecar(t, m, "client", clientIP, logger)
	m.server = startSidecar(t, m, "server", serverIP, logger)
	return m
}

func startSidecar(t *testing.T, m *mesh, sa, ip string, logger *slog.Logger) *sidecar.Sidecar {
	t.Helper()
	_, tokenFile, err := bootstrap.Mint(filepath.Join(m.caDir, "bootstrap"), "default", sa)
	if err != nil {
		t.Fatal(err)
	}
	node, err := sidecar.NodeConfig{IP: ip, PodName: sa + "-1", Namespace: "default", ServiceAccount: sa,
		Labels: map[string]string{"app": sa}}.Node()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(sidecar.Config{
		XDSAddress: m.cp.XDSAddr().String(), Node: node,
		AdminAddress: "127.0.0.1:0", HealthAddress: "127.0.0.1:0", MetricsAddress: "-",
		BindAddress: ip, DrainDuration: 10 * time.Millisecond,
		Identity: identity.Config{
			CAAddress: m.cp.SecureGRPCAddr().String(), ServerName: "localhost",
			// The published bundle: the CA directory's root-cert.pem.
			RootCertFile: filepath.Join(m.caDir, ca.RootFile), TokenFile: tokenFile,
			TrustDomain: trustDomain, Namespace: "default", ServiceAccount: sa,
			TTL: certTTL, RootCheckInterval: 200 * time.Millisecond,
			MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		sc.Stop()
		cancel()
		<-done
	})
	framework.Eventually(t, 20*time.Second, func() error {
		_, err := sc.Secrets().Certificate(secrets.WorkloadCertificate)
		return err
	})
	return sc
}

// transportSocket wraps a TLS context as the listener or cluster carries it.
func transportSocket(t *testing.T, m proto.Message) *corev3.TransportSocket {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
}

// common is Istio's ISTIO_MUTUAL context: the SVID "default", the bundle
// "ROOTCA", and a URI SAN matcher (exact for the client: secure naming;
// the trust domain prefix for the server).
func common(san *matcherv3.StringMatcher) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: secrets.WorkloadCertificate}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
				SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: san}}},
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: secrets.RootCA},
		}},
	}
}

// mtlsServer is the server workload's STRICT inbound: client certificate
// required, verified with the server sidecar's bundle; it answers every
// HTTP/1.1 request with 200 "ok".
type mtlsServer struct {
	ln       net.Listener
	tls      *tlssock.Server
	store    secrets.Store
	failures sync.Map // reason -> *atomic.Int64
	wg       sync.WaitGroup
}

func startServer(t *testing.T, store secrets.Store) *mtlsServer {
	t.Helper()
	ts, err := tlssock.CompileServer(transportSocket(t, &tlsv3.DownstreamTlsContext{
		CommonTlsContext:         common(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + trustDomain + "/"}}),
		RequireClientCertificate: wrapperspb.Bool(true),
	}))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &mtlsServer{ln: ln, tls: ts, store: store}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *mtlsServer) serve() {
	defer s.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			tc, err := s.tls.Handshake(ctx, c, s.store)
			cancel()
			if err != nil {
				v, _ := s.failures.LoadOrStore(tlssock.Reason(err), new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				return
			}
			r := bufio.NewReader(tc)
			for {
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				if _, err := io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
					return
				}
			}
		}()
	}
}

func (s *mtlsServer) refused(reason string) int64 {
	if v, ok := s.failures.Load(reason); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// clientTransport dials the server through the client sidecar's ISTIO_MUTUAL
// transport socket (secure naming: the server's SPIFFE ID).
func clientTransport(t *testing.T, store secrets.Store, keepAlive bool) *http.Transport {
	t.Helper()
	tc, err := tlssock.CompileClient(transportSocket(t, &tlsv3.UpstreamTlsContext{
		CommonTlsContext: common(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: serverID}}),
		Sni:              "outbound_.8080_._.server.default.svc.cluster.local",
	}))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4, ForceAttemptHTTP2: false,
		// "http://" URLs dial with DialContext: the mTLS is the transport
		// socket's, below HTTP, as in the sidecar.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			raw, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c, err := tc.Handshake(ctx, raw, store, nil)
			if err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// load sends requests at a constant rate over keep-alive and fresh
// connections until stop is closed, and counts outcomes.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	errs       []string
	wg         sync.WaitGroup
	stop       chan struct{}
}

func startLoad(t *testing.T, url string, transports []*http.Transport, perWorker time.Duration) *load {
	l := &load{stop: make(chan struct{})}
	for _, tr := range transports {
		for range 2 {
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				tick := time.NewTicker(perWorker)
				defer tick.Stop()
				for {
					select {
					case <-l.stop:
						return
					case <-tick.C:
					}
					resp, err := c.Get(url)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("status %d", resp.StatusCode)
						}
					}
					if err != nil {
						l.failed.Add(1)
						l.mu.Lock()
						if len(l.errs) < 10 {
							l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
						}
						l.mu.Unlock()
						continue
					}
					l.ok.Add(1)
				}
			}()
		}
	}
	t.Cleanup(l.finish)
	return l
}

func (l *load) finish() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// leaf returns a sidecar's current workload certificate.
func leaf(t *testing.T, sc *sidecar.Sidecar) *x509.Certificate {
	t.Helper()
	c, err := sc.Secrets().Certificate(secrets.WorkloadCertificate)
	if err != nil {
		t.Fatalf("workload certificate: %v", err)
	}
	return c.Leaf
}

// chainsTo reports whether the sidecar's certificate verifies with root
// alone.
func chainsTo(t *testing.T, sc *sidecar.Sidecar, root *x509.Certificate) bool {
	c, err := sc.Secrets().Certificate(secrets.WorkloadCertificate)
	if err != nil {
		return false
	}
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		if x, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(x)
		}
	}
	_, err = c.Leaf.Verify(x509.VerifyOptions{Roots: ca.NewBundle(root).Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// svidUnder issues a certificate for id under issuer (a test's own use of
// the CA's material, e.g. a peer that still has an old-root certificate).
func svidUnder(t *testing.T, is *ca.Issuer, sa string) *tls.Certificate {
	t.Helper()
	a, err := ca.New(ca.Config{Issuer: is, TrustDomain: trustDomain})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	iss, err := a.Issue(ca.Request{CSR: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
		Identity: ca.Identity{TrustDomain: trustDomain, Namespace: "default", ServiceAccount: sa}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: iss.Chain[:len(iss.Chain)-1], PrivateKey: key, Leaf: iss.Cert}
}

// trusts reports whether a sidecar's bundle (ROOTCA) accepts a certificate.
func trusts(sc *sidecar.Sidecar, c *tls.Certificate) bool {
	pool, err := sc.Secrets().Roots(secrets.RootCA)
	if err != nil {
		return false
	}
	_, err = c.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err == nil
}

// TestRotationUnderLoad: (a) workload certificates of 20 s are renewed
// several times, (b) the root is rotated (stage, promote, retire) through
// the CA directory of the running control plane, all under ~200 req/s of
// mutual-TLS traffic between the two sidecars' identities; no request
// fails, and at the end every SVID chains to the new root only and a peer
// with an old-root certificate is refused.
func TestRotationUnderLoad(t *testing.T) {
	start := time.Now()
	m := startMesh(t)
	srv := startServer(t, m.server.Secrets())
	url := "http://" + srv.ln.Addr().String() + "/"
	// 4 workers at 20 ms: ~200 req/s, half on kept-alive connections, half
	// on a fresh connection (a full mTLS handshake) each.
	l := startLoad(t, url, []*http.Transport{clientTransport(t, m.client.Secrets(), true), clientTransport(t, m.client.Secrets(), false)}, 20*time.Millisecond)

	// (a) Renewals: each sidecar gets two more certificates (TTL 20 s,
	// renewed at about half).
	serials := map[*sidecar.Sidecar]map[string]bool{m.client: {}, m.server: {}}
	framework.Eventually(t, 30*time.Second, func() error {
		for sc, seen := range serials {
			seen[leaf(t, sc).SerialNumber.String()] = true
			if len(seen) < 3 {
				return fmt.Errorf("%d certificates seen so far", len(seen))
			}
		}
		return nil
	})
	t.Logf("after %s: renewals done, %d requests ok, %d failed %v", time.Since(start).Round(time.Second), l.ok.Load(), l.failed.Load(), l.errs)

	// (b) Root rotation through the CA directory.
	before, err := ca.Load(m.caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := before.Issuer.Root
	res, err := ca.Stage(m.caDir, ca.Staging{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	staged := res.State.Staged
	newRoot := staged.Root
	probeNew := svidUnder(t, staged, "probe")
	framework.Eventually(t, 10*time.Second, func() error {
		for _, sc := range []*sidecar.Sidecar{m.client, m.server} {
			if !trusts(sc, probeNew) {
				return errors.New("a sidecar does not trust the staged root yet")
			}
		}
		return nil
	})
	if _, err := ca.Promote(m.caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 20*time.Second, func() error {
		for _, sc := range []*sidecar.Sidecar{m.client, m.server} {
			if !chainsTo(t, sc, newRoot) {
				return errors.New("a sidecar's certificate is still under the old root")
			}
		}
		return nil
	})
	if _, err := ca.Retire(m.caDir, time.Now()); err != nil {
		t.Fatal(err)
	}
	probeOld := svidUnder(t, before.Issuer, "client")
	framework.Eventually(t, 10*time.Second, func() error {
		for _, sc := range []*sidecar.Sidecar{m.client, m.server} {
			if trusts(sc, probeOld) {
				return errors.New("a sidecar still trusts the retired root")
			}
		}
		return nil
	})
	// A little more load on the final state, then stop it.
	okBefore := l.ok.Load()
	framework.Eventually(t, 10*time.Second, func() error {
		if l.ok.Load() < okBefore+200 {
			return errors.New("load still running on the final state")
		}
		return nil
	})
	l.finish()
	t.Logf("after %s: %d requests ok, %d failed", time.Since(start).Round(time.Second), l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("%d requests failed during rotation; first errors: %v", n, l.errs)
	}
	if l.ok.Load() < 2000 {
		t.Errorf("only %d requests made: the load was not sustained", l.ok.Load())
	}

	for name, sc := range map[string]*sidecar.Sidecar{"client": m.client, "server": m.server} {
		if !chainsTo(t, sc, newRoot) || chainsTo(t, sc, oldRoot) {
			t.Errorf("%s: the SVID does not chain to the new root only", name)
		}
	}
	// A client that still presents an old-root certificate is refused by
	// the server's STRICT inbound.
	old := tlstest.NewStore()
	old.SetCertificate(secrets.WorkloadCertificate, probeOld)
	old.SetRoots(secrets.RootCA, ca.NewBundle(newRoot, oldRoot).Pool())
	refusedBefore := srv.refused("unknown_ca")
	c := &http.Client{Transport: clientTransport(t, old, false), Timeout: 5 * time.Second}
	if resp, err := c.Get(url); err == nil {
		resp.Body.Close()
		t.Fatal("a client with an old-root certificate was served")
	}
	framework.Eventually(t, 5*time.Second, func() error {
		if srv.refused("unknown_ca") <= refusedBefore {
			return errors.New("the server did not count an unknown_ca refusal")
		}
		return nil
	})
	if d := time.Since(start); d > 90*time.Second {
		t.Errorf("the test took %s, over its 90 s budget", d)
	}
}
