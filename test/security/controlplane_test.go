//go:build linux

package security

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discoverypb "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
	"github.com/trellismesh/trellis/internal/kube/webhook"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/server"
	"github.com/trellismesh/trellis/internal/xds/server/h2raw"
	"github.com/trellismesh/trellis/test/framework"
)

const (
	adsSotwMethod  = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
	adsDeltaMethod = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
	caMethod       = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
)

// TestControlPlane is SECURITY.md section E (E4–E9) against the real
// control plane: `trellis discovery`'s server in process with its three
// ports (plaintext xDS, CA and xDS over mutual TLS, monitoring), real
// gRPC clients, the proxy's own xDS client, raw HTTP/2 for what no client
// sends, the validating webhook over HTTPS, and a network namespace for an
// off-host caller. E1–E3 are unit tests of internal/ca and
// internal/ca/server.
func TestControlPlane(t *testing.T) {
	cp := startControlPlane(t)
	cp.write(t, "ns1.yaml", serviceEntry("svc-a", "ns1", "svc-a.ns1.example"))
	cp.write(t, "ns2.yaml", serviceEntry("admin", "ns2", "admin.ns2.example"))
	alice := cp.issue(t, "ns1", "a") // spiffe://cluster.local/ns/ns1/sa/a

	t.Run("E4_NodeMetadataMismatch", func(t *testing.T) { testNodeMetadataMismatch(t, cp, &alice) })
	t.Run("E5_OtherNamespaceSecrets", func(t *testing.T) { testOtherNamespaceSecrets(t, cp, &alice) })
	t.Run("E6_MalformedFrames", func(t *testing.T) { testMalformedFrames(t, cp, &alice) })
	t.Run("E7_NACK", func(t *testing.T) { testNACK(t, cp) })
	t.Run("E8_AdmissionReview", func(t *testing.T) { testAdmissionReview(t, cp) })
	t.Run("E9_DebugEndpoints", func(t *testing.T) { testDebugEndpoints(t, cp) })
}

// testNodeMetadataMismatch: on the secure port the certificate is the
// identity; a node that claims another namespace or service account is
// refused, over both ADS variants.
func testNodeMetadataMismatch(t *testing.T, cp *controlPlane, alice *tls.Certificate) {
	cases := []struct {
		name           string
		pod, ns, sa    string
		code           codes.Code
		msg            string
		delta, noCerts bool
	}{
		{name: "own identity", pod: "a-0", ns: "ns1", sa: "a", code: codes.OK},
		{name: "service account left to the certificate", pod: "a-0", ns: "ns1", code: codes.OK},
		{name: "other namespace", pod: "a-0", ns: "ns2", sa: "a", code: codes.PermissionDenied, msg: `namespace "ns2"`},
		{name: "other service account", pod: "a-0", ns: "ns1", sa: "admin", code: codes.PermissionDenied, msg: `SERVICE_ACCOUNT "admin"`},
		{name: "other namespace and account", pod: "admin-0", ns: "ns2", sa: "admin", code: codes.PermissionDenied, msg: "ns2"},
		{name: "delta, other namespace", pod: "a-0", ns: "ns2", sa: "a", code: codes.PermissionDenied, msg: `namespace "ns2"`, delta: true},
		{name: "no client certificate", pod: "a-0", ns: "ns1", sa: "a", code: codes.Unauthenticated, noCerts: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cert := alice
			if tc.noCerts {
				cert = nil
			}
			cc := cp.secureConn(t, cert)
			node := xdsNode(tc.pod, tc.ns, tc.sa)
			var err error
			var typeURL string
			if tc.delta {
				ctx, cancel := context.WithTimeout(context.Background(), cpWait)
				defer cancel()
				s, serr := discoverypb.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
				if serr != nil {
					t.Fatal(serr)
				}
				if err = s.Send(&discoverypb.DeltaDiscoveryRequest{Node: node, TypeUrl: xds.ClusterType}); err == nil {
					var r *discoverypb.DeltaDiscoveryResponse
					r, err = s.Recv()
					typeURL = r.GetTypeUrl()
				}
			} else {
				var r *discoverypb.DiscoveryResponse
				r, err = openSotw(t, cc).ask(&discoverypb.DiscoveryRequest{Node: node, TypeUrl: xds.ClusterType})
				typeURL = r.GetTypeUrl()
			}
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			if tc.code == codes.OK && typeURL != xds.ClusterType {
				t.Fatalf("response of type %q", typeURL)
			}
			if !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Fatalf("message %q does not say %q", status.Convert(err).Message(), tc.msg)
			}
		})
	}
}

// keyMarkers are byte strings that would show key material in a resource:
// PEM key headers and the private scalars of the CA's signing key and of
// the given workload keys.
func keyMarkers(t *testing.T, cp *controlPlane, workloads ...*tls.Certificate) [][]byte {
	t.Helper()
	is, err := ca.LoadDir(cp.caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := [][]byte{[]byte("PRIVATE KEY")}
	keys := []crypto.PrivateKey{is.Key}
	for _, w := range workloads {
		keys = append(keys, w.PrivateKey)
	}
	for _, k := range keys {
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			b, err := k.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		case *rsa.PrivateKey:
			out = append(out, k.Primes[0].Bytes())
		default:
			t.Fatalf("key of type %T", k)
		}
	}
	return out
}

// testOtherNamespaceSecrets: the control plane serves no secrets (proxies
// resolve SDS names locally; see internal/xds/gen/mtls): a proxy of ns1
// asking for SDS resources naming ns2's identity or credentials gets
// nothing, over either variant and either port, and nothing it is sent
// carries key material.
func testOtherNamespaceSecrets(t *testing.T, cp *controlPlane, alice *tls.Certificate) {
	markers := keyMarkers(t, cp, alice)
	secrets := []string{"default", "ROOTCA", "spiffe://cluster.local/ns/ns2/sa/admin", "kubernetes://ns2/admin-cred",
		"kubernetes://admin-cred", "file-cert:/etc/certs/ns2/cert-chain.pem~/etc/certs/ns2/key.pem"}
	ports := map[string]func(t *testing.T) *sotw{
		"secure":    func(t *testing.T) *sotw { return openSotw(t, cp.secureConn(t, alice)) },
		"plaintext": func(t *testing.T) *sotw { return openSotw(t, cp.plainConn(t)) },
	}
	for _, port := range []string{"secure", "plaintext"} {
		t.Run("sotw/"+port, func(t *testing.T) {
			s := ports[port](t)
			node := xdsNode("a-0", "ns1", "a")
			cds, err := s.ask(&discoverypb.DiscoveryRequest{Node: node, TypeUrl: xds.ClusterType})
			if err != nil {
				t.Fatal(err)
			}
			checkNoKeys(t, markers, bodies(cds.GetResources()))
			// The stream handles requests in order: had the SDS request been
			// answered, that answer would come before LDS's.
			if err := s.stream.Send(&discoverypb.DiscoveryRequest{TypeUrl: xds.SecretType, ResourceNames: secrets}); err != nil {
				t.Fatal(err)
			}
			lds, err := s.ask(&discoverypb.DiscoveryRequest{TypeUrl: xds.ListenerType})
			if err != nil {
				t.Fatal(err)
			}
			if lds.GetTypeUrl() != xds.ListenerType {
				t.Fatalf("after the SDS request the next response is of type %s, want LDS: secrets were served", lds.GetTypeUrl())
			}
			checkNoKeys(t, markers, bodies(lds.GetResources()))
		})
	}
	t.Run("delta/secure", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), cpWait)
		defer cancel()
		s, err := discoverypb.NewAggregatedDiscoveryServiceClient(cp.secureConn(t, alice)).DeltaAggregatedResources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		node := xdsNode("a-0", "ns1", "a")
		// The secret subscription comes first, carrying the node.
		for _, req := range []*discoverypb.DeltaDiscoveryRequest{
			{Node: node, TypeUrl: xds.SecretType, ResourceNamesSubscribe: secrets},
			{TypeUrl: xds.ClusterType, ResourceNamesSubscribe: []string{"*"}},
		} {
			if err := s.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		r, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetTypeUrl() != xds.ClusterType {
			t.Fatalf("first response of type %s, want CDS: secrets were served", r.GetTypeUrl())
		}
		for _, res := range r.GetResources() {
			checkNoKeys(t, markers, [][]byte{res.GetResource().GetValue()})
		}
	})
}

// checkNoKeys fails for every serialised resource body that carries key
// material.
func checkNoKeys(t *testing.T, markers, bodies [][]byte) {
	t.Helper()
	for _, b := range bodies {
		for i, m := range markers {
			if bytes.Contains(b, m) {
				t.Errorf("a resource sent to ns1 contains key material (marker %d)", i)
			}
		}
	}
}

func bodies[T interface{ GetValue() []byte }](rs []T) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r.GetValue()
	}
	return out
}

// testMalformedFrames sends what no client sends to the plaintext xDS port
// and to the secure port (CA and xDS): garbage, an HTTP/1 request,
// truncated and oversized frames, gRPC messages claiming 4 GiB, too many
// streams, a ping flood, unknown type URLs. Each ends the stream or the
// connection; afterwards a well-behaved client still gets configuration
// and a certificate, the control plane's heap has not grown beyond
// heapBound and its goroutines are back near where they were.
func testMalformedFrames(t *testing.T, cp *controlPlane, alice *tls.Certificate) {
	const heapBound = 64 << 20
	heap0, goroutines0 := heapAndGoroutines()

	ports := []struct {
		name string
		dial func() (net.Conn, error)
		auth string
	}{
		{"plaintext", func() (net.Conn, error) { return net.DialTimeout("tcp", cp.srv.XDSAddr().String(), cpWait) }, "istiod:15010"},
		{"secure", func() (net.Conn, error) { return cp.dialTLS(alice) }, cpServerName + ":15012"},
	}
	for _, p := range ports {
		raw := func(t *testing.T) *h2raw.Conn {
			t.Helper()
			c, err := p.dial()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			hc, err := h2raw.Handshake(c)
			if err != nil {
				t.Fatal(err)
			}
			return hc
		}
		t.Run(p.name+"/garbage bytes", func(t *testing.T) {
			var c net.Conn
			var err error
			if p.name == "secure" {
				// Before the TLS handshake: not a ClientHello.
				c, err = net.DialTimeout("tcp", cp.srv.SecureGRPCAddr().String(), cpWait)
			} else {
				c, err = p.dial()
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			junk := make([]byte, 4096)
			_, _ = rand.Read(junk)
			_, _ = c.Write(junk)
			if err := h2raw.Closed(c, cpWait); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(p.name+"/HTTP/1 request", func(t *testing.T) {
			c, err := p.dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET /debug/syncz HTTP/1.1\r\nHost: istiod\r\n\r\n")
			if err := h2raw.Closed(c, cpWait); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(p.name+"/truncated frame", func(t *testing.T) {
			c := raw(t)
			// HEADERS announcing 1000 bytes, 7 delivered, then end of input.
			if _, err := c.Write(append(h2raw.FrameHeader(1000, http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1), "partial"...)); err != nil {
				t.Fatal(err)
			}
			closeWrite(t, c.Conn)
			if _, err := c.Wait(cpWait, nil); !errors.Is(err, h2raw.ErrClosed) {
				t.Fatalf("connection not closed: %v", err)
			}
		})
		t.Run(p.name+"/frame larger than SETTINGS_MAX_FRAME_SIZE", func(t *testing.T) {
			c := raw(t)
			if err := c.OpenGRPC(1, p.auth, adsSotwMethod); err != nil {
				t.Fatal(err)
			}
			// A DATA frame header announcing 16 MiB - 1 (the 24-bit maximum).
			if _, err := c.Write(append(h2raw.FrameHeader(1<<24-1, http2.FrameData, 0, 1), make([]byte, 1024)...)); err != nil {
				t.Fatal(err)
			}
			f, err := c.Wait(cpWait, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
			if err == nil {
				if ga := f.(*http2.GoAwayFrame); ga.ErrCode != http2.ErrCodeFrameSize {
					t.Errorf("GOAWAY %v, want FRAME_SIZE_ERROR", ga.ErrCode)
				}
				_, err = c.Wait(cpWait, nil)
			}
			if !errors.Is(err, h2raw.ErrClosed) {
				t.Fatalf("connection not closed: %v", err)
			}
		})
		methods := []string{adsSotwMethod, adsDeltaMethod}
		if p.name == "secure" {
			methods = append(methods, caMethod)
		}
		for _, m := range methods {
			short := m[strings.LastIndex(m, "/")+1:]
			for _, claim := range []uint32{1<<32 - 1, 4<<20 + 1} {
				t.Run(fmt.Sprintf("%s/%s message claiming %d bytes", p.name, short, claim), func(t *testing.T) {
					c := raw(t)
					if err := c.OpenGRPC(1, p.auth, m); err != nil {
						t.Fatal(err)
					}
					if err := c.Framer.WriteData(1, false, append(h2raw.GRPCPrefix(claim), "some bytes"...)); err != nil {
						t.Fatal(err)
					}
					f, err := c.Wait(cpWait, func(f http2.Frame) bool { _, ok := h2raw.GRPCStatus(f); return ok })
					if err != nil {
						t.Fatalf("no grpc-status: %v", err)
					}
					if code, _ := h2raw.GRPCStatus(f); code != fmt.Sprint(int(codes.ResourceExhausted)) {
						t.Fatalf("grpc-status %s, want %d (ResourceExhausted)", code, codes.ResourceExhausted)
					}
				})
			}
			t.Run(p.name+"/"+short+" message that is not protobuf", func(t *testing.T) {
				c := raw(t)
				if err := c.OpenGRPC(1, p.auth, m); err != nil {
					t.Fatal(err)
				}
				junk := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
				if err := c.Framer.WriteData(1, true, append(h2raw.GRPCPrefix(uint32(len(junk))), junk...)); err != nil {
					t.Fatal(err)
				}
				f, err := c.Wait(cpWait, func(f http2.Frame) bool { _, ok := h2raw.GRPCStatus(f); return ok })
				if err != nil {
					t.Fatalf("no grpc-status: %v", err)
				}
				if code, _ := h2raw.GRPCStatus(f); code == "0" {
					t.Fatal("grpc-status 0 for a message that does not decode")
				}
			})
		}
		t.Run(p.name+"/more streams than allowed", func(t *testing.T) {
			c := raw(t)
			n := uint32(server.DefaultMaxConcurrentStreams)
			for i := range n + 1 {
				if err := c.OpenGRPC(2*i+1, p.auth, adsDeltaMethod); err != nil {
					t.Fatal(err)
				}
			}
			f, err := c.Wait(cpWait, func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok })
			if err != nil {
				t.Fatalf("no RST_STREAM: %v", err)
			}
			if rst := f.(*http2.RSTStreamFrame); rst.StreamID != 2*n+1 || rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v, want stream %d REFUSED_STREAM", rst.StreamID, rst.ErrCode, 2*n+1)
			}
		})
		t.Run(p.name+"/ping flood", func(t *testing.T) {
			c := raw(t)
			for i := range 10 {
				if err := c.Framer.WritePing(false, [8]byte{byte(i)}); err != nil {
					break // the server may already have closed
				}
			}
			f, err := c.Wait(cpWait, func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok })
			if err != nil {
				t.Fatalf("no GOAWAY: %v", err)
			}
			if ga := f.(*http2.GoAwayFrame); ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
				t.Fatalf("GOAWAY %v %q, want ENHANCE_YOUR_CALM", ga.ErrCode, ga.DebugData())
			}
		})
	}

	t.Run("unknown type URLs are ignored, the stream keeps serving", func(t *testing.T) {
		for name, s := range map[string]*sotw{"plaintext": openSotw(t, cp.plainConn(t)), "secure": openSotw(t, cp.secureConn(t, alice))} {
			node := xdsNode("a-0", "ns1", "a")
			for _, u := range []string{"type.googleapis.com/evil.Unknown", "", strings.Repeat("x", 10000), "type.googleapis.com/envoy.config.cluster.v3.Cluster\x00"} {
				if err := s.stream.Send(&discoverypb.DiscoveryRequest{Node: node, TypeUrl: u}); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			r, err := s.ask(&discoverypb.DiscoveryRequest{Node: node, TypeUrl: xds.ClusterType})
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if r.GetTypeUrl() != xds.ClusterType {
				t.Fatalf("%s: response of type %q, want CDS only", name, r.GetTypeUrl())
			}
		}
	})

	t.Run("healthy afterwards", func(t *testing.T) {
		checkHealthy(t, cp)
		// Every connection of the cases above is closed by now (their
		// subtests' cleanups ran): the heap and goroutines come back.
		framework.Eventually(t, cpWait, func() error {
			heap, goroutines := heapAndGoroutines()
			if heap > heap0+heapBound {
				return fmt.Errorf("heap %d MiB, %d MiB before the abuse (bound %d MiB)", heap>>20, heap0>>20, heapBound>>20)
			}
			if goroutines > goroutines0+50 {
				return fmt.Errorf("%d goroutines, %d before the abuse", goroutines, goroutines0)
			}
			return nil
		})
		heap, goroutines := heapAndGoroutines()
		t.Logf("heap in use %d MiB -> %d MiB, goroutines %d -> %d", heap0>>20, heap>>20, goroutines0, goroutines)
	})
}

// heapAndGoroutines is the test process's live heap after a GC (the
// control plane runs in it) and its goroutine count.
func heapAndGoroutines() (uint64, int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, runtime.NumGoroutine()
}

func closeWrite(t *testing.T, c net.Conn) {
	t.Helper()
	switch cw := c.(type) {
	case *net.TCPConn:
		_ = cw.CloseWrite()
	case *tls.Conn:
		_ = cw.CloseWrite()
	default:
		t.Fatalf("cannot half-close a %T", c)
	}
}

// checkHealthy: both xDS ports serve configuration and the CA issues.
func checkHealthy(t *testing.T, cp *controlPlane) {
	t.Helper()
	node := xdsNode("a-0", "ns1", "a")
	for name, s := range map[string]*sotw{"plaintext": openSotw(t, cp.plainConn(t))} {
		if r, err := s.ask(&discoverypb.DiscoveryRequest{Node: node, TypeUrl: xds.ClusterType}); err != nil || len(r.GetResources()) == 0 {
			t.Fatalf("%s xDS: %v (%d clusters)", name, err, len(r.GetResources()))
		}
	}
	cert := cp.issue(t, "ns1", "healthy")
	s := openSotw(t, cp.secureConn(t, &cert))
	if r, err := s.ask(&discoverypb.DiscoveryRequest{Node: xdsNode("h-0", "ns1", "healthy"), TypeUrl: xds.ClusterType}); err != nil || len(r.GetResources()) == 0 {
		t.Fatalf("secure xDS with a new certificate: %v (%d clusters)", err, len(r.GetResources()))
	}
}

// nackConsumer is a proxy's configuration consumer that rejects every
// cluster whose name contains reject, keeping its last good set.
type nackConsumer struct {
	reject string
	mu     sync.Mutex
	good   map[string][]string // type → names of the last accepted set
}

func (c *nackConsumer) Apply(set *xdsclient.Set) map[string]error {
	errs := map[string]error{}
	names := set.Names()
	for _, name := range names {
		if c.reject != "" && strings.Contains(name, c.reject) {
			errs[name] = fmt.Errorf("cluster %s: unsupported by this proxy", name)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.good[set.TypeURL()] = names
	return nil
}

func (c *nackConsumer) names(typeURL string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.good[typeURL])
}

// countMetrics counts the xDS client's responses and NACKs per type.
type countMetrics struct {
	mu        sync.Mutex
	responses map[string]int
	nacks     map[string]int
}

func (m *countMetrics) OnResponse(typeURL string, _ int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.responses[typeURL]++
}

func (m *countMetrics) OnNACK(typeURL, _ string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.nacks[typeURL]++
}

func (m *countMetrics) OnReconnect(int, time.Duration, error) {}

func (m *countMetrics) get(typeURL string) (responses, nacks int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.responses[typeURL], m.nacks[typeURL]
}

// proxy is the data plane's xDS client, as a sidecar runs it.
type proxy struct {
	client   *xdsclient.Client
	consumer *nackConsumer
	metrics  *countMetrics
	id       string
}

func startProxy(t *testing.T, cp *controlPlane, pod string, protocol xdsclient.Protocol, reject string) *proxy {
	t.Helper()
	node, err := sidecar.NodeConfig{IP: "10.1.0.9", PodName: pod, Namespace: "ns1", ServiceAccount: "a"}.Node()
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{
		consumer: &nackConsumer{reject: reject, good: map[string][]string{}},
		metrics:  &countMetrics{responses: map[string]int{}, nacks: map[string]int{}},
		id:       node.GetId(),
	}
	p.client, err = xdsclient.New(xdsclient.Config{
		Server: cp.srv.XDSAddr().String(), Node: node, Consumer: p.consumer, Protocol: protocol, Metrics: p.metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.client.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("xds client %s: %v", pod, err)
		}
	})
	return p
}

func hasCluster(names []string, part string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, part) })
}

func (p *proxy) clusters() []string {
	var out []string
	rs, _ := p.client.Resources(xds.ClusterType)
	for n := range rs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// cdsState is the proxy's CDS state in /debug/syncz.
func (cp *controlPlane) cdsState(t *testing.T, proxyID string) (server.XDSSync, bool) {
	for _, s := range cp.syncz(t) {
		if s.Proxy != proxyID {
			continue
		}
		for _, x := range s.XDS {
			if x.TypeURL == xds.ClusterType {
				return x, true
			}
		}
	}
	return server.XDSSync{}, false
}

// testNACK: the proxy's own xDS client rejects a cluster. It keeps its last
// good configuration, the control plane counts the reject and shows it in
// syncz, does not push the rejected content again, and the proxy next to
// it, which accepts the cluster, gets it.
func testNACK(t *testing.T, cp *controlPlane) {
	const rejectsCDS = `pilot_total_xds_rejects{type="cds"}`
	const pushesCDS = `pilot_xds_pushes{type="cds"}`
	picky := startProxy(t, cp, "picky-0", xdsclient.Delta, "nack-me")
	other := startProxy(t, cp, "other-0", xdsclient.SotW, "")
	framework.Eventually(t, cpWait, func() error {
		for _, p := range []*proxy{picky, other} {
			if !hasCluster(p.consumer.names(xds.ClusterType), "svc-a.ns1.example") {
				return fmt.Errorf("%s has clusters %v", p.id, p.clusters())
			}
		}
		return nil
	})
	rejects0 := cp.metric(t, rejectsCDS)
	goodSet := picky.consumer.names(xds.ClusterType)

	cp.write(t, "nack.yaml", serviceEntry("nack-me", "ns1", "nack-me.ns1.example"))
	framework.Eventually(t, cpWait, func() error {
		if !hasCluster(other.clusters(), "nack-me") {
			return fmt.Errorf("the other proxy has not got the new cluster: %v", other.clusters())
		}
		if _, n := picky.metrics.get(xds.ClusterType); n == 0 {
			return errors.New("the picky proxy has not NACKed yet")
		}
		if r := cp.metric(t, rejectsCDS); r <= rejects0 {
			return fmt.Errorf("%s = %v, was %v", rejectsCDS, r, rejects0)
		}
		st, ok := cp.cdsState(t, picky.id)
		if !ok || st.Status != server.StateNACKed || !strings.Contains(st.LastNACK, "nack-me") {
			return fmt.Errorf("syncz CDS of the picky proxy: %+v", st)
		}
		return nil
	})
	// Last good configuration kept: the client's accepted set and what the
	// consumer applied are the set before the change.
	if got := picky.consumer.names(xds.ClusterType); !slices.Equal(got, goodSet) {
		t.Errorf("picky proxy's applied clusters %v, want the last good %v", got, goodSet)
	}
	if got := picky.clusters(); hasCluster(got, "nack-me") || !hasCluster(got, "svc-a.ns1.example") {
		t.Errorf("picky client's accepted clusters %v", got)
	}
	if st, _ := cp.cdsState(t, other.id); st.Status != server.StateSynced {
		t.Errorf("the other proxy's CDS is %s, want %s", st.Status, server.StateSynced)
	}

	// No resend loop: nothing changes, so nothing more is pushed. Absence
	// needs an observation window; three seconds is 300 debounce periods.
	responses0, nacks0 := picky.metrics.get(xds.ClusterType)
	pushes0 := cp.metric(t, pushesCDS)
	select {
	case <-time.After(3 * time.Second):
	case <-t.Context().Done():
		return
	}
	responses1, nacks1 := picky.metrics.get(xds.ClusterType)
	if responses1 != responses0 || nacks1 != nacks0 {
		t.Errorf("within 3s of the NACK the picky proxy got %d more CDS responses and sent %d more NACKs", responses1-responses0, nacks1-nacks0)
	}
	if pushes1 := cp.metric(t, pushesCDS); pushes1 != pushes0 {
		t.Errorf("%s went from %v to %v with no change", pushesCDS, pushes0, pushes1)
	}

	// New content replaces the rejected one: the proxy accepts it.
	cp.remove(t, "nack.yaml")
	framework.Eventually(t, cpWait, func() error {
		st, ok := cp.cdsState(t, picky.id)
		if !ok || st.Status != server.StateSynced {
			return fmt.Errorf("syncz CDS of the picky proxy: %+v", st)
		}
		if hasCluster(other.clusters(), "nack-me") {
			return errors.New("the other proxy still has the removed cluster")
		}
		return nil
	})
	if _, nacks2 := picky.metrics.get(xds.ClusterType); nacks2 != nacks1 {
		t.Errorf("the picky proxy NACKed the corrected configuration")
	}
}

// testAdmissionReview: the validating webhook over HTTPS, in process (no
// API server needed: the test posts what the API server would), given an
// oversized body, deeply nested JSON and a regex over the limit. Each is
// refused with a 4xx or a denial naming the field, and a good review is
// answered right after each.
func testAdmissionReview(t *testing.T, cp *controlPlane) {
	is, err := ca.LoadDir(cp.caDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ca.Config{Issuer: is, TrustDomain: "cluster.local"})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := webhook.NewCerts(webhook.CertsConfig{Authority: authority, DNSNames: []string{cpServerName}})
	if err != nil {
		t.Fatal(err)
	}
	wh, err := webhook.New(webhook.Config{Address: "127.0.0.1:0", Certs: certs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wh.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook: %v", err)
		}
	})
	addr, err := wh.Addr(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: cpWait, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: authority.Roots().Pool(), ServerName: cpServerName, MinVersion: tls.VersionTLS12},
	}}
	t.Cleanup(hc.CloseIdleConnections)
	url := "https://" + addr.String() + webhook.ValidatePath
	post := func(body io.Reader) (int, []byte) {
		t.Helper()
		resp, err := hc.Post(url, "application/json", body)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, b
	}
	reviewBody := func(spec string) []byte {
		obj := `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"vs","namespace":"ns1"},"spec":` + spec + `}`
		b, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID: types.UID("uid-1"), Kind: metav1.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"},
				Namespace: "ns1", Name: "vs", Operation: admissionv1.Create, Object: kruntime.RawExtension{Raw: []byte(obj)},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	answer := func(code int, body []byte) *admissionv1.AdmissionResponse {
		t.Helper()
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &out); err != nil || out.Response == nil {
			t.Fatalf("not an AdmissionReview (%v): %s", err, body)
		}
		return out.Response
	}
	goodSpec := `{"hosts":["svc-a.ns1.example"],"http":[{"match":[{"uri":{"regex":"/a/[0-9]+"}}],"route":[{"destination":{"host":"svc-a.ns1.example"}}]}]}`
	good := func(t *testing.T) {
		t.Helper()
		if r := answer(post(bytes.NewReader(reviewBody(goodSpec)))); !r.Allowed {
			t.Fatalf("good VirtualService after the attack: denied: %v", r.Result)
		}
	}
	good(t)

	nested := func(depth int) string { return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) }
	longRegex := strings.Repeat("a", 2000)
	cases := []struct {
		name string
		body func() io.Reader
		code int    // HTTP status; 200 means an AdmissionReview answer, denied
		msg  string // part of the body (4xx) or of the denial
	}{
		{"body of 10 MiB", func() io.Reader {
			return io.MultiReader(strings.NewReader(`{"request":{"object":"`), io.LimitReader(neverEnding('x'), 10<<20), strings.NewReader(`"}}`))
		}, http.StatusRequestEntityTooLarge, "larger than"},
		{"JSON nested 100,000 deep", func() io.Reader { return strings.NewReader(`{"request":` + nested(100_000) + `}`) }, http.StatusBadRequest, "decoding the AdmissionReview"},
		{"spec nested 5,000 deep", func() io.Reader { return bytes.NewReader(reviewBody(nested(5000))) }, http.StatusOK, "nesting is deeper"},
		{"regex over the size limit", func() io.Reader {
			return bytes.NewReader(reviewBody(`{"hosts":["svc-a.ns1.example"],"http":[{"match":[{"uri":{"regex":"` + longRegex + `"}}],"route":[{"destination":{"host":"svc-a.ns1.example"}}]}]}`))
		}, http.StatusOK, "spec.http[0].match[0].uri.regex: regex is too long"},
		{"regex that is not RE2", func() io.Reader {
			return bytes.NewReader(reviewBody(`{"hosts":["svc-a.ns1.example"],"http":[{"match":[{"uri":{"regex":"(a"}}],"route":[{"destination":{"host":"svc-a.ns1.example"}}]}]}`))
		}, http.StatusOK, "spec.http[0].match[0].uri.regex: invalid RE2 regex"},
		{"not JSON", func() io.Reader { return strings.NewReader("\x00\x01garbage") }, http.StatusBadRequest, "decoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := post(tc.body())
			if tc.code != http.StatusOK {
				if code != tc.code || !strings.Contains(string(body), tc.msg) {
					t.Fatalf("status %d %q, want %d saying %q", code, truncate(body), tc.code, tc.msg)
				}
			} else {
				r := answer(code, body)
				if r.Allowed || r.Result == nil || r.Result.Code/100 != 4 || !strings.Contains(r.Result.Message, tc.msg) {
					t.Fatalf("answer %+v, want a 4xx denial saying %q", r.Result, tc.msg)
				}
			}
			good(t)
		})
	}
}

// neverEnding is an endless reader of one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// testDebugEndpoints: the monitoring port listens on every address; from
// another network namespace (an off-host caller, through a veth pair and a
// bridge) every debug endpoint answers 403, forwarding headers or not,
// while /metrics answers and loopback callers get the debug data.
func testDebugEndpoints(t *testing.T, cp *controlPlane) {
	framework.RequireNetns(t)
	pid := os.Getpid()
	prefix := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(180 + pid%20), byte((pid / 20) % 250), 0}), 24)
	br := framework.NewBridge(t, fmt.Sprintf("cpe9%d", pid%100000), prefix)
	remote := br.AddNetns(t, "off", prefix.Addr().Next().Next())
	_, port, _ := net.SplitHostPort(cp.mon)
	offHost := &http.Client{Timeout: cpWait, Transport: &http.Transport{DialContext: remote.DialContext}}
	t.Cleanup(offHost.CloseIdleConnections)
	local := &http.Client{Timeout: cpWait}
	get := func(c *http.Client, host, path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(host, port)+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s via %s: %v", path, host, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, string(b)
	}
	// A connected proxy, so that syncz and config_dump have data.
	s := openSotw(t, cp.plainConn(t))
	node := xdsNode("dbg-0", "ns1", "a")
	if _, err := s.ask(&discoverypb.DiscoveryRequest{Node: node, TypeUrl: xds.ClusterType}); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/debug/syncz", "/debug/config_dump?proxyID=dbg-0.ns1", "/debug/pprof/", "/debug/pprof/heap",
		"/debug/pprof/goroutine?debug=2", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1", "/dashboard/",
	}
	spoof := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1", "Host": "localhost"}
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			for _, hdr := range []map[string]string{nil, spoof} {
				if code, body := get(offHost, br.Addr.String(), path, hdr); code != http.StatusForbidden {
					t.Errorf("off-host GET %s (headers %v): %d %q, want 403", path, hdr, code, truncate([]byte(body)))
				}
			}
		})
	}
	// The refusals are about the caller: loopback callers are served.
	for _, path := range []string{"/debug/syncz", "/debug/config_dump?proxyID=dbg-0.ns1", "/debug/pprof/"} {
		if code, body := get(local, "127.0.0.1", path, nil); code != http.StatusOK {
			t.Errorf("loopback GET %s: %d %q, want 200", path, code, truncate([]byte(body)))
		}
	}
	if code, _ := get(offHost, br.Addr.String(), "/metrics", nil); code != http.StatusOK {
		t.Errorf("off-host GET /metrics: %d, want 200 (Prometheus scrapes it)", code)
	}
}
