package manager_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock/tlstest"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
)

const hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

// peerHTTP answers every HTTP/1.1 request on a listener connection with
// what the listener learned: the peer's identity and the chain.
type peerHTTP struct{}

func (peerHTTP) Build(*listenerv3.Filter) (listener.ConnHandler, error) { return peerHTTP{}, nil }

func (peerHTTP) Serve(_ context.Context, c *listener.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		req.Body.Close()
		body := fmt.Sprintf("peer=%s mtls=%t chain=%s alpn=%s", c.PeerIdentity, c.MutualTLS, c.Chain, c.TLS.NegotiatedProtocol)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
}

// peerTCP writes the peer's identity and closes.
type peerTCP struct{}

func (peerTCP) Build(*listenerv3.Filter) (listener.ConnHandler, error) { return peerTCP{}, nil }

func (peerTCP) Serve(_ context.Context, c *listener.Conn) {
	fmt.Fprintf(c, "peer=%s chain=%s alpn=%s", c.PeerIdentity, c.Chain, c.TLS.NegotiatedProtocol)
}

// strictServer runs the generator's STRICT virtualInbound listener of a
// workload (namespace default, service account sa) on 127.0.0.1, serving
// with cert; it returns its port.
func strictServer(t *testing.T, sa string, store *tlstest.Store) int {
	t.Helper()
	yaml := `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server, namespace: default}
spec:
  hosts: [server.default.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-1, namespace: default}
spec: {address: 10.0.9.1, labels: {app: server}, serviceAccount: ` + sa + `}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`
	p := gentest.Proxy("10.0.9.1", "default", map[string]string{"app": "server"})
	p.ServiceAccount = sa
	var vi *listenerv3.Listener
	for _, l := range genlistener.Build(gentest.NewSnapshot(nil, gentest.YAML(t, yaml)).Scope(p)) {
		if l.GetName() == "virtualInbound" {
			vi = proto.Clone(l).(*listenerv3.Listener)
		}
	}
	if vi == nil {
		t.Fatal("no virtualInbound generated")
	}
	vi.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
	}}}
	vi.BindToPort = wrapperspb.Bool(true)
	lm, err := listener.New(listener.Config{
		Filters:     listener.Registry{hcmType: peerHTTP{}, tcp.TypeURL: peerTCP{}},
		OriginalDst: func(*net.TCPConn) (netip.AddrPort, error) { return netip.AddrPort{}, errors.New("no capture") },
		Secrets:     store,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lm.Update([]*listenerv3.Listener{vi}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lm.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listener Run: %v", err)
		}
	})
	a, _ := lm.Addr("virtualInbound")
	return a.(*net.TCPAddr).Port
}

// mutualClient is a cluster manager with the generator's ISTIO_MUTUAL
// cluster for svcHost, whose one endpoint (service account "server") is
// 127.0.0.1:port.
func mutualClient(t *testing.T, port int, store *tlstest.Store, protocol string) *manager.Manager {
	t.Helper()
	yaml := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: web, protocol: %s}
  endpoints:
  - {address: 127.0.0.1, ports: {web: %d}, serviceAccount: server}
%s`, svcHost, protocol, port, rule("    tls: {mode: ISTIO_MUTUAL}"))
	m := startManager(t, manager.Config{Transports: manager.TLSTransports(store)})
	apply(t, m, generate(t, yaml))
	return m
}

// TestIstioMutualToStrictInbound sends traffic through the generated
// ISTIO_MUTUAL cluster to the generated STRICT inbound listener: HTTP
// picks the HTTP chain by Istio's ALPN override and the server sees the
// client's SPIFFE ID; TCP goes to the TCP chain. The client learns the
// server's verified SPIFFE ID: in the request's Info (fresh and reused
// connections) and from the TCP connection (tcp.PeerIdentifier).
func TestIstioMutualToStrictInbound(t *testing.T) {
	const serverID = "spiffe://cluster.local/ns/default/sa/server"
	ca := tlstest.NewCA(t, "mesh")
	port := strictServer(t, "server", tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "default", "server"), ca))
	clientStore := tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "default", "client"), ca)

	t.Run("HTTP", func(t *testing.T) {
		m := mutualClient(t, port, clientStore, "HTTP")
		r := mustGet(t, m, router.PickContext{})
		want := "peer=spiffe://cluster.local/ns/default/sa/client mtls=true chain=virtualInbound-catchall-http alpn=http/1.1"
		if r.status != 200 || r.backend != want {
			t.Errorf("got %d %q\nwant %q", r.status, r.backend, want)
		}
		if r.info.PeerIdentity != serverID {
			t.Errorf("pool Info.PeerIdentity %q, want %q", r.info.PeerIdentity, serverID)
		}
		// The router's view, on the pooled connection.
		req, err := http.NewRequest(http.MethodGet, "http://"+svcHost+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, info, err := m.RoundTrip(context.Background(), svcCluster, router.PickContext{}, req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if info.PeerIdentity != serverID || info.Host == "" {
			t.Errorf("router Info %+v, want PeerIdentity %q", info, serverID)
		}
	})
	t.Run("TCP", func(t *testing.T) {
		m := mutualClient(t, port, clientStore, "TCP")
		c, err := m.Dial(context.Background(), svcCluster, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if pi, ok := c.(tcp.PeerIdentifier); !ok || pi.PeerIdentity() != serverID {
			t.Errorf("TCP connection %T: want a tcp.PeerIdentifier with %q", c, serverID)
		}
		b := make([]byte, 256)
		n, _ := c.Read(b)
		want := "peer=spiffe://cluster.local/ns/default/sa/client chain=virtualInbound alpn=istio-peer-exchange"
		if string(b[:n]) != want {
			t.Errorf("got %q\nwant %q", b[:n], want)
		}
	})
}

// TestSecureNaming: a server presenting another service account's
// certificate is refused (UF, reason san_mismatch).
func TestSecureNaming(t *testing.T) {
	ca := tlstest.NewCA(t, "mesh")
	port := strictServer(t, "impostor", tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "default", "impostor"), ca))
	m := mutualClient(t, port, tlstest.Mesh(ca.SPIFFE(t, "cluster.local", "default", "client"), ca), "HTTP")
	r := get(context.Background(), m, svcCluster, router.PickContext{})
	if r.err == nil || !isKind(r.err, pool.ConnectFailure) || !strings.Contains(r.err.Error(), "san_mismatch") {
		t.Fatalf("request to an impostor: %v", r.err)
	}
	if r.info.Protocol != pool.HTTP1 {
		t.Errorf("protocol %v", r.info.Protocol)
	}
}
