package manager_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
)

// echoServer accepts TCP connections, reports each peer address and
// echoes lines back.
type echoServer struct {
	ln    net.Listener
	peers chan netip.AddrPort
	wg    sync.WaitGroup
}

func newEchoServer(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, peers: make(chan netip.AddrPort, 100)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) addrPort() netip.AddrPort { return s.ln.Addr().(*net.TCPAddr).AddrPort() }

// echo writes a line on c and reads it back.
func echo(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
}

// TestDial covers the tcp proxy's Upstream over the clusters Istio
// generates for every sidecar.
func TestDial(t *testing.T) {
	srv := newEchoServer(t)
	backends := []*backend{newBackend(t, "b0", false)}
	m := startManager(t, manager.Config{})
	apply(t, m, generate(t, serviceYAML("TCP", backends, "")))
	restored := &listener.Conn{Restored: true, Destination: srv.addrPort(), Source: netip.MustParseAddrPort("10.0.0.9:5555")}

	t.Run("PassthroughCluster dials the original destination", func(t *testing.T) {
		c, err := m.Dial(context.Background(), cluster.PassthroughCluster, restored)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		echo(t, c)
		if peer := <-srv.peers; peer.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("source %v", peer)
		}
	})
	t.Run("InboundPassthroughCluster binds 127.0.0.6", func(t *testing.T) {
		c, err := m.Dial(context.Background(), cluster.InboundPassthroughCluster, restored)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		echo(t, c)
		if peer := <-srv.peers; peer.Addr() != netip.MustParseAddr(cluster.InboundPassthroughBindIPv4) {
			t.Errorf("source %v, want %s", peer, cluster.InboundPassthroughBindIPv4)
		}
	})
	t.Run("half-close passes through", func(t *testing.T) {
		c, err := m.Dial(context.Background(), cluster.PassthroughCluster, restored)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		<-srv.peers
		if _, err := io.WriteString(c, "bye"); err != nil {
			t.Fatal(err)
		}
		if err := listener.CloseWrite(c); err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(c); err != nil || string(b) != "bye" {
			t.Errorf("after half-close: %q %v", b, err)
		}
	})

	errCases := []struct {
		name    string
		cluster string
		conn    *listener.Conn
		want    error
	}{
		{"not restored", cluster.PassthroughCluster, &listener.Conn{Destination: srv.addrPort()}, tcp.ErrNoHealthyUpstream},
		{"no connection", cluster.PassthroughCluster, nil, tcp.ErrNoHealthyUpstream},
		{"BlackHoleCluster", cluster.BlackHoleCluster, restored, tcp.ErrNoHealthyUpstream},
		{"unknown cluster", "outbound|1||nowhere", restored, tcp.ErrNoCluster},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Dial(context.Background(), tc.cluster, tc.conn)
			if !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("EDS cluster", func(t *testing.T) {
		c, err := m.Dial(context.Background(), svcCluster, nil)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the backend's accept", func() bool { return backends[0].accepts.Load() == 1 })
		st := clusterStatus(t, m, svcCluster)
		if n := st.Breakers[circuit.Default].Count[circuit.Connections]; n != 1 || st.Hosts[0].CxActive != 1 {
			t.Errorf("while open: %d connections counted, host %+v", n, st.Hosts[0].HostStatus)
		}
		c.Close()
		c.Close()
		st = clusterStatus(t, m, svcCluster)
		if n := st.Breakers[circuit.Default].Count[circuit.Connections]; n != 0 || st.Hosts[0].CxActive != 0 {
			t.Errorf("after close: %d connections counted, host %+v", n, st.Hosts[0].HostStatus)
		}
	})

	t.Run("HTTP through PassthroughCluster", func(t *testing.T) {
		b := newBackend(t, "passthrough", false)
		dst := netip.MustParseAddrPort(b.addr())
		r := get(context.Background(), m, cluster.PassthroughCluster, router.PickContext{Restored: true, Destination: dst})
		if r.err != nil || r.backend != "passthrough" {
			t.Fatalf("%+v", r)
		}
		r = get(context.Background(), m, cluster.PassthroughCluster, router.PickContext{Destination: dst})
		if !errors.Is(r.err, router.ErrNoHealthyUpstream) {
			t.Errorf("not restored: %v", r.err)
		}
	})
}

// TestDialMaxConnections: the tcp proxy's connections count against
// maxConnections (UO beyond it).
func TestDialMaxConnections(t *testing.T) {
	b := newBackend(t, "b0", false)
	m := startManager(t, manager.Config{})
	apply(t, m, generate(t, serviceYAML("TCP", []*backend{b}, rule(`    connectionPool:
      tcp: {maxConnections: 2}`))))
	var conns []net.Conn
	for range 2 {
		c, err := m.Dial(context.Background(), svcCluster, nil)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if _, err := m.Dial(context.Background(), svcCluster, nil); !errors.Is(err, tcp.ErrOverflow) {
		t.Errorf("third connection: %v, want overflow", err)
	}
	conns[0].Close()
	c, err := m.Dial(context.Background(), svcCluster, nil)
	if err != nil {
		t.Fatalf("after a close: %v", err)
	}
	c.Close()
	conns[1].Close()
}
