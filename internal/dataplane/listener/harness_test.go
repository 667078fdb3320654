package listener_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

const hcmTypeURL = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// waitFor is the longest any test waits for something that should happen.
const waitFor = 10 * time.Second

// generated returns the generator's listeners for a WorkloadEntry's sidecar.
func generated(t testing.TB, cfgs []config.Config, workload string) map[string]*listenerv3.Listener {
	t.Helper()
	snap := gentest.NewSnapshot(nil, cfgs)
	for _, c := range cfgs {
		if c.Kind == schema.WorkloadEntry && c.Name == workload {
			we := c.Spec.(*networking.WorkloadEntry)
			out := map[string]*listenerv3.Listener{}
			for _, l := range genlistener.Build(snap.Scope(gentest.Proxy(we.GetAddress(), c.Namespace, we.GetLabels()))) {
				out[l.GetName()] = l
			}
			return out
		}
	}
	t.Fatalf("no WorkloadEntry %q", workload)
	return nil
}

// rebind returns a copy of l bound to 127.0.0.1 on an ephemeral port.
func rebind(t testing.TB, l *listenerv3.Listener) *listenerv3.Listener {
	t.Helper()
	if l == nil {
		t.Fatal("listener not generated")
	}
	c := proto.Clone(l).(*listenerv3.Listener)
	c.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
	}}}
	c.BindToPort = wrapperspb.Bool(true)
	return c
}

// tcpProxyListener is a bound listener with one tcp_proxy chain to cluster.
func tcpProxyListener(t testing.TB, name, cluster string) *listenerv3.Listener {
	t.Helper()
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Name: "tcp", Filters: []*listenerv3.Filter{tcpProxyFilter(t, cluster)}}},
	}
}

func tcpProxyFilter(t testing.TB, cluster string) *listenerv3.Filter {
	t.Helper()
	a, err := anypb.New(&tcpv3.TcpProxy{StatPrefix: cluster, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}
}

// hcmStub stands in for the HTTP connection manager: it answers
// "hcm:<route> <first line>" and closes.
type hcmStub struct{}

func (hcmStub) Build(f *listenerv3.Filter) (listener.ConnHandler, error) {
	h := &hcmv3.HttpConnectionManager{}
	if err := anypb.UnmarshalTo(f.GetTypedConfig(), h, proto.UnmarshalOptions{}); err != nil {
		return nil, err
	}
	route := h.GetRds().GetRouteConfigName()
	if route == "" {
		route = "inline"
	}
	return hcmHandler(route), nil
}

type hcmHandler string

func (h hcmHandler) Serve(_ context.Context, c *listener.Conn) {
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Fprintf(c, "hcm:%s %s", string(h), line)
}

// sessions is a tcp.Observer that hands over finished sessions.
type sessions struct{ closed chan *tcp.Session }

func newSessions() *sessions { return &sessions{closed: make(chan *tcp.Session, 64)} }

func (s *sessions) Connected(*tcp.Session)                       {}
func (s *sessions) Transferred(*tcp.Session, tcp.Direction, int) {}
func (s *sessions) Closed(x *tcp.Session)                        { s.closed <- x }

func (s *sessions) next(t testing.TB) *tcp.Session {
	t.Helper()
	select {
	case x := <-s.closed:
		return x
	case <-time.After(waitFor):
		t.Fatal("no session closed")
		return nil
	}
}

// counters is a listener.Metrics recording filter closes.
type counters struct {
	mu       sync.Mutex
	reasons  []string
	overflow int
}

func (c *counters) Overflow(string) { c.mu.Lock(); c.overflow++; c.mu.Unlock() }
func (c *counters) FilterClosed(_, r string) {
	c.mu.Lock()
	c.reasons = append(c.reasons, r)
	c.mu.Unlock()
}
func (c *counters) NoFilterChain(string) {}

func (c *counters) get() ([]string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.reasons...), c.overflow
}

// env is a running Manager wired with tcp_proxy over a tcp.Direct upstream.
type env struct {
	m        *listener.Manager
	upstream *tcp.Direct
	sessions *sessions
	metrics  *counters
}

// start runs a Manager with cfg (Filters is filled in) and listeners; it
// is closed at the end of the test.
func start(t *testing.T, cfg listener.Config, upstream *tcp.Direct, ls ...*listenerv3.Listener) *env {
	t.Helper()
	e := &env{upstream: upstream, sessions: newSessions(), metrics: &counters{}}
	b, err := tcp.NewBuilder(tcp.Config{Upstream: upstream, Observer: e.sessions})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Filters = listener.Registry{tcp.TypeURL: b, hcmTypeURL: hcmStub{}}
	cfg.Metrics = e.metrics
	if cfg.OriginalDst == nil {
		cfg.OriginalDst = func(*net.TCPConn) (netip.AddrPort, error) { return netip.AddrPort{}, errors.New("no capture in tests") }
	}
	e.m, err = listener.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Update(ls); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

func (e *env) addr(t testing.TB, name string) string {
	t.Helper()
	a, ok := e.m.Addr(name)
	if !ok {
		t.Fatalf("listener %q is not bound", name)
	}
	return a.String()
}

// backend is a TCP (or TLS) server on 127.0.0.1 running handle for each
// connection; it stops at the end of the test.
type backend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newBackend(t *testing.T, tlsCfg *tls.Config, handle func(net.Conn)) *backend {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{ln: ln, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns[c] = struct{}{}
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				if tlsCfg != nil {
					c = tls.Server(c, tlsCfg)
				}
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// replyAfterEOF reads the whole request (until the client half-closes),
// then answers "<name>:<request>" and closes: it needs half-close to work.
func replyAfterEOF(name string) func(net.Conn) {
	return func(c net.Conn) {
		req, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%s:%s", name, req)
	}
}

// lineEcho answers each line with "<name>:<line>".
func lineEcho(name string) func(net.Conn) {
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(c, "%s:%s", name, line); err != nil {
				return
			}
		}
	}
}

// dial connects to addr from source IP src ("" for any).
func dial(t testing.TB, src, addr string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: waitFor}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// halfCloseExchange sends req, half-closes, and reads the whole answer.
func halfCloseExchange(t testing.TB, c *net.TCPConn, req string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(resp)
}

// lineExchange writes a line and reads one back.
func lineExchange(t testing.TB, r *bufio.Reader, c net.Conn, line string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSuffix(got, "\n")
}

// expectClosed waits until the peer closes c without sending anything.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("connection still open")
	}
	if len(b) > 0 {
		t.Fatalf("received %q from a connection that should have been closed", b)
	}
}

// origDstBySource is a fake original destination: by the client's source IP.
func origDstBySource(m map[string]string) func(*net.TCPConn) (netip.AddrPort, error) {
	return func(c *net.TCPConn) (netip.AddrPort, error) {
		src := c.RemoteAddr().(*net.TCPAddr).IP.String()
		if d, ok := m[src]; ok {
			return netip.ParseAddrPort(d)
		}
		return netip.AddrPort{}, errors.New("not redirected")
	}
}

// certFor returns a self-signed certificate for host.
func certFor(t testing.TB, host string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// portValue is the port specifier of a bound address.
func portValue(a net.Addr) *corev3.SocketAddress_PortValue {
	return &corev3.SocketAddress_PortValue{PortValue: uint32(a.(*net.TCPAddr).Port)}
}
