package listener_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	httpinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/http_inspector/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// TestInboundHalfClose runs the generated virtualInbound on loopback: the
// original destination picks the per-port chain, tcp_proxy carries raw TCP
// to the backend, and a client half-close reaches the backend as EOF while
// the backend's answer still flows back. The sniffed port sends HTTP to
// the connection manager and other bytes to tcp_proxy, replaying what the
// HTTP inspector read.
func TestInboundHalfClose(t *testing.T) {
	ls := generated(t, gentest.YAML(t, listener.SniffedYAML), "self-1")
	tcpBackend := newBackend(t, nil, replyAfterEOF("tcp9001"))
	sniffedBackend := newBackend(t, nil, replyAfterEOF("tcp9000"))
	e := start(t, listener.Config{OriginalDst: origDstBySource(map[string]string{
		"127.0.0.2": "10.0.0.9:9001",
		"127.0.0.3": "10.0.0.9:9000",
	})}, &tcp.Direct{Static: map[string][]string{
		"inbound|9001||": {tcpBackend.addr()},
		"inbound|9000||": {sniffedBackend.addr()},
	}}, rebind(t, ls["virtualInbound"]))
	addr := e.addr(t, "virtualInbound")

	if got := halfCloseExchange(t, dial(t, "127.0.0.2", addr), "hello"); got != "tcp9001:hello" {
		t.Errorf("TCP port: got %q", got)
	}
	s := e.sessions.next(t)
	if s.Cluster != "inbound|9001||" || s.ReceivedBytes() != 5 || s.SentBytes() != int64(len("tcp9001:hello")) || s.ResponseFlags() != "-" {
		t.Errorf("session: cluster %q received %d sent %d flags %s", s.Cluster, s.ReceivedBytes(), s.SentBytes(), s.ResponseFlags())
	}
	d := s.Downstream
	if d.Listener != "virtualInbound" || d.Chain != "0.0.0.0_9001" || !d.Restored || d.Destination != netip.MustParseAddrPort("10.0.0.9:9001") || d.Transport != listener.TransportRawBuffer {
		t.Errorf("conn: %+v", d)
	}

	// Sniffed port, not HTTP: the inspector's bytes are replayed upstream.
	if got := halfCloseExchange(t, dial(t, "127.0.0.3", addr), "\x00\x01binary"); got != "tcp9000:\x00\x01binary" {
		t.Errorf("sniffed port, TCP: got %q", got)
	}
	// Sniffed port, HTTP/1.1: the HTTP chain, which sees the request from
	// its first byte.
	c := dial(t, "127.0.0.3", addr)
	if got := halfCloseExchange(t, c, "GET /x HTTP/1.1\r\nHost: self\r\n\r\n"); got != "hcm:inbound|9000|| GET /x HTTP/1.1\r\n" {
		t.Errorf("sniffed port, HTTP: got %q", got)
	}
}

// TestTLSPassthroughBySNI routes TLS by server name to two backends, with
// real crypto/tls on both ends and nothing terminated in between; the
// client's half-close (close_notify + FIN) reaches the server.
func TestTLSPassthroughBySNI(t *testing.T) {
	ls := generated(t, gentest.YAML(t, listener.TLSYAML), "client-1")
	apiCert, apiLeaf := certFor(t, "api.example.com")
	egressCert, egressLeaf := certFor(t, "egress.example.com")
	api := newBackend(t, &tls.Config{Certificates: []tls.Certificate{apiCert}}, replyAfterEOF("api"))
	egress := newBackend(t, &tls.Config{Certificates: []tls.Certificate{egressCert}}, replyAfterEOF("egress"))
	e := start(t, listener.Config{}, &tcp.Direct{
		Static: map[string][]string{
			"outbound|8443||egress.example.com": {api.addr()}, // api.example.com's route
			"outbound|443||egress.example.com":  {egress.addr()},
		},
		OriginalDst: map[string]netip.Addr{"PassthroughCluster": {}},
	}, rebind(t, ls["0.0.0.0_443"]))
	addr := e.addr(t, "0.0.0.0_443")
	roots := x509.NewCertPool()
	roots.AddCert(apiLeaf)
	roots.AddCert(egressLeaf)

	for _, tc := range []struct{ sni, want string }{
		{"api.example.com", "api:ping"},
		{"egress.example.com", "egress:ping"},
	} {
		raw := dial(t, "", addr)
		c := tls.Client(raw, &tls.Config{ServerName: tc.sni, RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}})
		c.SetDeadline(time.Now().Add(waitFor))
		if _, err := io.WriteString(c, "ping"); err != nil {
			t.Fatalf("%s: write: %v", tc.sni, err)
		}
		// A TLS half-close: close_notify, then the TCP FIN (crypto/tls
		// leaves the latter to the caller).
		if err := c.CloseWrite(); err != nil {
			t.Fatalf("%s: CloseWrite: %v", tc.sni, err)
		}
		if err := raw.CloseWrite(); err != nil {
			t.Fatalf("%s: TCP CloseWrite: %v", tc.sni, err)
		}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.sni, got, err, tc.want)
		}
		s := e.sessions.next(t)
		if s.Downstream.SNI != tc.sni || s.Downstream.Transport != listener.TransportTLS || !slices.Equal(s.Downstream.ALPN, []string{"h2", "http/1.1"}) {
			t.Errorf("%s: conn %+v", tc.sni, s.Downstream)
		}
	}

	// An unknown name takes the default chain, PassthroughCluster, which
	// has no original destination here: the connection is closed.
	c := tls.Client(dial(t, "", addr), &tls.Config{ServerName: "other.example.com", RootCAs: roots})
	c.SetDeadline(time.Now().Add(waitFor))
	if err := c.Handshake(); err == nil {
		t.Error("handshake through the passthrough chain succeeded")
	}
	if s := e.sessions.next(t); !s.Downstream.DefaultChain || s.ResponseFlags() != tcp.FlagNoHealthyUpstream {
		t.Errorf("unknown SNI: default=%v flags %s", s.Downstream.DefaultChain, s.ResponseFlags())
	}
}

// TestUpdateKeepsEstablishedConnections replaces a listener's chain: the
// socket stays, the established connection keeps its old chain, new
// connections get the new one; an unchanged listener is left alone; a
// removed listener stops accepting while its connection drains.
func TestUpdateKeepsEstablishedConnections(t *testing.T) {
	b1 := newBackend(t, nil, lineEcho("b1"))
	b2 := newBackend(t, nil, lineEcho("b2"))
	up := &tcp.Direct{Static: map[string][]string{"v1": {b1.addr()}, "v2": {b2.addr()}}}
	other := tcpProxyListener(t, "other", "v1")
	e := start(t, listener.Config{}, up, tcpProxyListener(t, "l", "v1"), other)
	addr := e.addr(t, "l")
	otherBefore := e.m.Listeners()["other"]

	old := dial(t, "", addr)
	oldR := bufio.NewReader(old)
	if got := lineExchange(t, oldR, old, "a"); got != "b1:a" {
		t.Fatalf("before update: %q", got)
	}

	if err := e.m.Update([]*listenerv3.Listener{tcpProxyListener(t, "l", "v2"), other}); err != nil {
		t.Fatal(err)
	}
	if got := e.addr(t, "l"); got != addr {
		t.Errorf("socket changed: %s → %s", addr, got)
	}
	if e.m.Listeners()["other"] != otherBefore {
		t.Error("unchanged listener was rebuilt")
	}
	if got := lineExchange(t, oldR, old, "b"); got != "b1:b" {
		t.Errorf("established connection after update: %q, want the old chain", got)
	}
	fresh := dial(t, "", addr)
	if got := lineExchange(t, bufio.NewReader(fresh), fresh, "c"); got != "b2:c" {
		t.Errorf("new connection after update: %q, want the new chain", got)
	}

	// Removal: no new connections, the old one still served.
	if err := e.m.Update([]*listenerv3.Listener{other}); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, waitFor); err == nil {
		c.Close()
		t.Error("removed listener still accepts")
	}
	if got := lineExchange(t, oldR, old, "d"); got != "b1:d" {
		t.Errorf("established connection after removal: %q", got)
	}
}

func TestDrainTimeoutClosesOldConnections(t *testing.T) {
	b1 := newBackend(t, nil, lineEcho("b1"))
	up := &tcp.Direct{Static: map[string][]string{"v1": {b1.addr()}, "v2": {b1.addr()}}}
	e := start(t, listener.Config{DrainTimeout: 100 * time.Millisecond}, up, tcpProxyListener(t, "l", "v1"))
	c := dial(t, "", e.addr(t, "l"))
	r := bufio.NewReader(c)
	if got := lineExchange(t, r, c, "a"); got != "b1:a" {
		t.Fatalf("got %q", got)
	}
	if err := e.m.Update([]*listenerv3.Listener{tcpProxyListener(t, "l", "v2")}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := r.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Errorf("old connection after the drain time: %v, want EOF", err)
	}
}

func TestUpdateIsAllOrNothing(t *testing.T) {
	b1 := newBackend(t, nil, lineEcho("b1"))
	up := &tcp.Direct{Static: map[string][]string{"v1": {b1.addr()}}}
	e := start(t, listener.Config{}, up, tcpProxyListener(t, "l", "v1"))
	addr := e.addr(t, "l")
	busy, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	taken := tcpProxyListener(t, "taken", "v1")
	taken.Address.GetSocketAddress().PortSpecifier = portValue(busy.Addr())
	broken := tcpProxyListener(t, "broken", "v1")
	broken.FilterChains[0].Filters[0].GetTypedConfig().TypeUrl = "type.googleapis.com/unknown"
	dup := tcpProxyListener(t, "dup", "v1")
	dup.Address.GetSocketAddress().PortSpecifier = portValue(busy.Addr())

	err = e.m.Update([]*listenerv3.Listener{tcpProxyListener(t, "l", "v2"), taken, broken})
	var ue *listener.UpdateError
	if !errors.As(err, &ue) || len(ue.Errors) != 2 {
		t.Fatalf("error %v, want an UpdateError for two listeners", err)
	}
	if !strings.Contains(ue.Errors["taken"].Error(), `listener "taken": binding 127.0.0.1:`) ||
		!strings.Contains(ue.Errors["broken"].Error(), `listener "broken": filter chain 0 ("tcp"): network filter 0 ("envoy.filters.network.tcp_proxy"): unsupported network filter type "type.googleapis.com/unknown"`) {
		t.Errorf("errors: %v", ue)
	}
	err = e.m.Update([]*listenerv3.Listener{tcpProxyListener(t, "l", "v1"), taken, dup})
	if !errors.As(err, &ue) || !strings.Contains(ue.Errors["taken"].Error()+ue.Errors["dup"].Error(), "duplicate address") {
		t.Errorf("duplicate address: %v", err)
	}
	// Nothing changed.
	if got := e.addr(t, "l"); got != addr {
		t.Errorf("address changed to %s", got)
	}
	c := dial(t, "", addr)
	if got := lineExchange(t, bufio.NewReader(c), c, "a"); got != "b1:a" {
		t.Errorf("after rejected updates: %q", got)
	}
}

// TestConnectionLimit refuses connections beyond the limit while the
// existing ones are served (SECURITY C8).
func TestConnectionLimit(t *testing.T) {
	b := newBackend(t, nil, lineEcho("b"))
	e := start(t, listener.Config{MaxConnections: 2}, &tcp.Direct{Static: map[string][]string{"c": {b.addr()}}}, tcpProxyListener(t, "l", "c"))
	addr := e.addr(t, "l")
	c1, c2 := dial(t, "", addr), dial(t, "", addr)
	r1, r2 := bufio.NewReader(c1), bufio.NewReader(c2)
	if lineExchange(t, r1, c1, "1") != "b:1" || lineExchange(t, r2, c2, "2") != "b:2" {
		t.Fatal("connections under the limit not served")
	}
	expectClosed(t, dial(t, "", addr))
	if _, overflow := e.metrics.get(); overflow != 1 {
		t.Errorf("overflow count %d", overflow)
	}
	if got := lineExchange(t, r1, c1, "3"); got != "b:3" {
		t.Errorf("existing connection during the flood: %q", got)
	}
	// A slot frees up when a connection ends.
	c2.Close()
	deadline := time.Now().Add(waitFor)
	for {
		c := dial(t, "", addr)
		c.SetDeadline(time.Now().Add(waitFor))
		if _, err := io.WriteString(c, "4\n"); err == nil {
			if got, err := bufio.NewReader(c).ReadString('\n'); err == nil && got == "b:4\n" {
				break
			}
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("no connection accepted after one closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestInspectionTimeouts: a client that never sends its ClientHello is
// closed at the handshake timeout (SECURITY C6) even though the listener
// disables its own timeout and continues on timeout; listener_filters_timeout
// closes, or goes on to the default chain with
// continue_on_listener_filters_timeout (a server-first protocol on a
// sniffed port).
func TestInspectionTimeouts(t *testing.T) {
	ls := generated(t, gentest.YAML(t, listener.TLSYAML), "client-1")
	greeter := newBackend(t, nil, func(c net.Conn) { io.WriteString(c, "220 server speaks first\r\n") })

	t.Run("handshake timeout", func(t *testing.T) {
		e := start(t, listener.Config{HandshakeTimeout: 200 * time.Millisecond}, &tcp.Direct{}, rebind(t, ls["0.0.0.0_443"]))
		began := time.Now()
		expectClosed(t, dial(t, "", e.addr(t, "0.0.0.0_443")))
		if d := time.Since(began); d < 150*time.Millisecond {
			t.Errorf("closed after %v, before the timeout", d)
		}
		waitReason(t, e, "handshake_timeout")
	})

	sniffing := func(timeout time.Duration, cont bool) *listenerv3.Listener {
		l := tcpProxyListener(t, "sniff", "greeter")
		l.DefaultFilterChain = l.FilterChains[0]
		l.FilterChains = []*listenerv3.FilterChain{{
			Name:             "http",
			FilterChainMatch: &listenerv3.FilterChainMatch{ApplicationProtocols: []string{"http/1.1", "h2c"}},
			Filters:          []*listenerv3.Filter{tcpProxyFilter(t, "unused")},
		}}
		a, _ := anypb.New(&httpinspectorv3.HttpInspector{})
		l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: listener.HTTPInspectorFilterName, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: a}}}
		l.ListenerFiltersTimeout = durationpb.New(timeout)
		l.ContinueOnListenerFiltersTimeout = cont
		return l
	}
	up := &tcp.Direct{Static: map[string][]string{"greeter": {greeter.addr()}}}

	t.Run("listener_filters_timeout closes", func(t *testing.T) {
		e := start(t, listener.Config{}, up, sniffing(150*time.Millisecond, false))
		expectClosed(t, dial(t, "", e.addr(t, "sniff")))
		waitReason(t, e, "timeout")
	})
	t.Run("peer closes during inspection", func(t *testing.T) {
		e := start(t, listener.Config{}, up, sniffing(time.Minute, false))
		c := dial(t, "", e.addr(t, "sniff"))
		io.WriteString(c, "GET /incompl")
		c.CloseWrite()
		expectClosed(t, c)
		waitReason(t, e, "remote_close")
	})
	t.Run("continue_on_listener_filters_timeout", func(t *testing.T) {
		e := start(t, listener.Config{}, up, sniffing(150*time.Millisecond, true))
		c := dial(t, "", e.addr(t, "sniff"))
		c.SetDeadline(time.Now().Add(waitFor))
		got, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || got != "220 server speaks first\r\n" {
			t.Errorf("server-first protocol: %q, %v", got, err)
		}
	})
}

func waitReason(t *testing.T, e *env, reason string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		reasons, _ := e.metrics.get()
		if slices.Contains(reasons, reason) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("filter close reasons %q, want %q", reasons, reason)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOriginalDstHandoff: virtualOutbound hands each connection to the
// listener of its original destination, exact address first, then
// 0.0.0.0:port; otherwise its own chains serve it (passthrough to the
// original destination, or the blackhole for its own port).
func TestOriginalDstHandoff(t *testing.T) {
	ls := generated(t, gentest.YAML(t, listener.SniffedYAML), "self-1")
	h1 := newBackend(t, nil, replyAfterEOF("headless-1"))
	self := newBackend(t, nil, replyAfterEOF("self"))
	external := newBackend(t, nil, replyAfterEOF("external"))
	legacy := newBackend(t, nil, replyAfterEOF("legacy"))
	e := start(t, listener.Config{OriginalDst: origDstBySource(map[string]string{
		"127.0.0.2": "10.0.3.1:9042",     // exact listener 10.0.3.1_9042
		"127.0.0.3": "10.7.7.7:9001",     // wildcard listener 0.0.0.0_9001
		"127.0.0.4": external.addr(),     // no listener: PassthroughCluster
		"127.0.0.5": "10.1.1.1:15001",    // the capture port: blackhole
		"127.0.0.6": "240.240.0.40:7070", // sniffing listener: its inspectors run after the hand-off
	})}, &tcp.Direct{
		Static: map[string][]string{
			"outbound|9042||headless.default.svc.cluster.local": {h1.addr()},
			"outbound|9001||self.default.svc.cluster.local":     {self.addr()},
			"outbound|7070||legacy.default.svc.cluster.local":   {legacy.addr()},
			"BlackHoleCluster": nil,
		},
		OriginalDst: map[string]netip.Addr{"PassthroughCluster": {}},
	}, rebind(t, ls["virtualOutbound"]), ls["10.0.3.1_9042"], ls["10.0.3.2_9042"], ls["0.0.0.0_9001"], ls["240.240.0.40_7070"])
	addr := e.addr(t, "virtualOutbound")

	for _, tc := range []struct {
		src, want, listener, chain string
	}{
		{"127.0.0.2", "headless-1:q", "10.0.3.1_9042", ""},
		{"127.0.0.3", "self:q", "0.0.0.0_9001", ""},
		{"127.0.0.4", "external:q", "virtualOutbound", "PassthroughFilterChain"},
		{"127.0.0.6", "legacy:\x00q", "240.240.0.40_7070", ""},
	} {
		req := "q"
		if tc.src == "127.0.0.6" {
			req = "\x00q" // not HTTP: the HTTP inspector decides at once
		}
		if got := halfCloseExchange(t, dial(t, tc.src, addr), req); got != tc.want {
			t.Errorf("from %s: got %q, want %q", tc.src, got, tc.want)
		}
		s := e.sessions.next(t)
		if s.Downstream.Listener != tc.listener || s.Downstream.Chain != tc.chain || !s.Downstream.Restored {
			t.Errorf("from %s: served by %q chain %q restored=%v", tc.src, s.Downstream.Listener, s.Downstream.Chain, s.Downstream.Restored)
		}
	}
	if got := halfCloseExchange(t, dial(t, "127.0.0.6", addr), "GET / HTTP/1.1\r\n\r\n"); got != "hcm:legacy.default.svc.cluster.local:7070 GET / HTTP/1.1\r\n" {
		t.Errorf("HTTP after hand-off: %q", got)
	}
	expectClosed(t, dial(t, "127.0.0.5", addr))
	if s := e.sessions.next(t); s.Downstream.Chain != "virtualOutbound-blackhole" || s.ResponseFlags() != tcp.FlagNoHealthyUpstream {
		t.Errorf("capture port: chain %q flags %s", s.Downstream.Chain, s.ResponseFlags())
	}
}

func TestManagerLifecycle(t *testing.T) {
	if _, err := listener.New(listener.Config{}); err == nil {
		t.Error("New without Filters")
	}
	b, err := tcp.NewBuilder(tcp.Config{Upstream: &tcp.Direct{}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := listener.New(listener.Config{Filters: listener.Registry{tcp.TypeURL: b}})
	if err != nil {
		t.Fatal(err)
	}
	l := tcpProxyListener(t, "l", "c")
	var ue *listener.UpdateError
	if err := m.Update([]*listenerv3.Listener{l, l}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "duplicate listener name") {
		t.Errorf("duplicate names: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(nil); !errors.Is(err, listener.ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	if err := m.Run(t.Context()); !errors.Is(err, listener.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
