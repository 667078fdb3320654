package tcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

const waitFor = 10 * time.Second

// tcpPair returns the two ends of a loopback TCP connection, closed at
// the end of the test.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	client, server, err := dialPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func dialPair() (client, server *net.TCPConn, err error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	r := <-ch
	if err != nil || r.err != nil {
		if c != nil {
			c.Close()
		}
		if r.c != nil {
			r.c.Close()
		}
		return nil, nil, errors.Join(err, r.err)
	}
	return c.(*net.TCPConn), r.c.(*net.TCPConn), nil
}

// pipeUpstream hands out the proxy side of fresh loopback pairs and
// keeps the far ends for the test.
type pipeUpstream struct {
	t        *testing.T
	mu       sync.Mutex
	fails    int // dials to fail before succeeding
	err      error
	dials    int
	far      chan *net.TCPConn
	hashKeys []uint64
	// peer, when set, is the identity the connections report
	// (PeerIdentifier).
	peer string
}

// identifiedConn is an upstream connection that knows its host's
// identity.
type identifiedConn struct {
	*net.TCPConn
	peer string
}

func (c identifiedConn) PeerIdentity() string { return c.peer }

func newPipeUpstream(t *testing.T) *pipeUpstream {
	return &pipeUpstream{t: t, far: make(chan *net.TCPConn, 8)}
}

func (u *pipeUpstream) Dial(ctx context.Context, cluster string, c *listener.Conn) (net.Conn, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.dials++
	if k, ok := HashKey(ctx); ok {
		u.hashKeys = append(u.hashKeys, k)
	}
	if u.err != nil {
		return nil, u.err
	}
	if u.fails > 0 {
		u.fails--
		return nil, errors.New("connection refused")
	}
	near, far, err := dialPair() // not tcpPair: this runs outside the test goroutine
	if err != nil {
		return nil, err
	}
	u.t.Cleanup(func() { near.Close(); far.Close() })
	u.far <- far
	if u.peer != "" {
		return identifiedConn{near, u.peer}, nil
	}
	return near, nil
}

func (u *pipeUpstream) backend(t *testing.T) *net.TCPConn {
	t.Helper()
	select {
	case c := <-u.far:
		return c
	case <-time.After(waitFor):
		t.Fatal("no upstream connection")
		return nil
	}
}

// recorder is an Observer.
type recorder struct {
	connected   atomic.Int32
	transferred atomic.Int64
	closed      chan *Session
}

func newRecorder() *recorder { return &recorder{closed: make(chan *Session, 4)} }

func (r *recorder) Connected(*Session)                         { r.connected.Add(1) }
func (r *recorder) Transferred(_ *Session, _ Direction, n int) { r.transferred.Add(int64(n)) }
func (r *recorder) Closed(s *Session)                          { r.closed <- s }

// serve runs a proxy for tp over a fresh downstream pair; it returns the
// client end and a channel closed when Serve returns.
func serve(t *testing.T, ctx context.Context, tp *tcpv3.TcpProxy, up Upstream, obs Observer) (*net.TCPConn, <-chan struct{}) {
	t.Helper()
	s, err := Compile(tp)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBuilder(Config{Upstream: up, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	client, server := tcpPair(t)
	down := &listener.Conn{Conn: server, Source: netip.MustParseAddrPort("10.1.2.3:4567"), Transport: listener.TransportRawBuffer}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Proxy(s).Serve(ctx, down)
	}()
	t.Cleanup(func() {
		client.Close()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Error("Serve did not return")
		}
	})
	return client, done
}

func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Serve did not return")
	}
}

// TestHalfCloseBothWays: each side's FIN reaches the other while the other
// direction keeps flowing; counters and the observer see every byte.
func TestHalfCloseBothWays(t *testing.T) {
	up := newPipeUpstream(t)
	rec := newRecorder()
	client, done := serve(t, context.Background(), cluster("c"), up, rec)
	backend := up.backend(t)

	io.WriteString(client, "request")
	client.CloseWrite()
	if got := readAll(t, backend); got != "request" {
		t.Fatalf("backend got %q", got)
	}
	// The client half-closed; the backend can still answer.
	io.WriteString(backend, "response")
	backend.CloseWrite()
	if got := readAll(t, client); got != "response" {
		t.Fatalf("client got %q", got)
	}
	waitDone(t, done)
	s := <-rec.closed
	if s.ReceivedBytes() != 7 || s.SentBytes() != 8 || rec.transferred.Load() != 15 || rec.connected.Load() != 1 || s.ResponseFlags() != "-" || s.Cluster != "c" {
		t.Errorf("session: received %d sent %d transferred %d flags %s", s.ReceivedBytes(), s.SentBytes(), rec.transferred.Load(), s.ResponseFlags())
	}

	// Upstream first: the server's FIN reaches the client, which can
	// still send.
	client, done = serve(t, context.Background(), cluster("c"), up, rec)
	backend = up.backend(t)
	io.WriteString(backend, "banner")
	backend.CloseWrite()
	if got := readAll(t, client); got != "banner" {
		t.Fatalf("client got %q", got)
	}
	io.WriteString(client, "late")
	client.CloseWrite()
	if got := readAll(t, backend); got != "late" {
		t.Fatalf("backend got %q", got)
	}
	waitDone(t, done)
	<-rec.closed
}

func TestUpstreamResetClosesDownstream(t *testing.T) {
	up := newPipeUpstream(t)
	client, done := serve(t, context.Background(), cluster("c"), up, nil)
	backend := up.backend(t)
	io.WriteString(client, "x")
	backend.SetLinger(0)
	backend.Close() // RST
	client.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadAll(client); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("downstream not closed")
	}
	waitDone(t, done)
}

func TestIdleTimeout(t *testing.T) {
	up := newPipeUpstream(t)
	rec := newRecorder()
	tp := cluster("c")
	tp.IdleTimeout = durationpb.New(300 * time.Millisecond)
	client, done := serve(t, context.Background(), tp, up, rec)
	backend := up.backend(t)

	// Traffic keeps the connection alive past the idle timeout.
	began := time.Now()
	buf := make([]byte, 1)
	for time.Since(began) < 700*time.Millisecond {
		io.WriteString(client, "k")
		backend.SetReadDeadline(time.Now().Add(waitFor))
		if _, err := io.ReadFull(backend, buf); err != nil {
			t.Fatalf("connection closed while active after %v: %v", time.Since(began), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Then silence closes both sides.
	if got := readAll(t, client); got != "" {
		t.Errorf("client got %q", got)
	}
	waitDone(t, done)
	if s := <-rec.closed; s.ResponseFlags() != FlagIdleTimeout {
		t.Errorf("flags %s", s.ResponseFlags())
	}
}

func TestMaxDownstreamConnectionDuration(t *testing.T) {
	up := newPipeUpstream(t)
	rec := newRecorder()
	tp := cluster("c")
	tp.MaxDownstreamConnectionDuration = durationpb.New(150 * time.Millisecond)
	tp.MaxDownstreamConnectionDurationJitterPercentage = &typev3.Percent{Value: 50}
	client, done := serve(t, context.Background(), tp, up, rec)
	up.backend(t)
	began := time.Now()
	readAll(t, client)
	if d := time.Since(began); d < 100*time.Millisecond {
		t.Errorf("closed after %v", d)
	}
	waitDone(t, done)
	if s := <-rec.closed; s.ResponseFlags() != FlagDurationTimeout {
		t.Errorf("flags %s", s.ResponseFlags())
	}
}

func TestConnectAttempts(t *testing.T) {
	tests := []struct {
		name      string
		attempts  uint32
		fails     int
		err       error
		wantDials int
		wantFlags string
	}{
		{"retried until it connects", 3, 2, nil, 3, "-"},
		{"attempts used up", 2, 5, nil, 2, "UF,URX"},
		{"one attempt by default", 0, 5, nil, 1, "UF"},
		{"no healthy upstream is not retried", 3, 0, fmt.Errorf("c: %w", ErrNoHealthyUpstream), 1, "UH"},
		{"no cluster", 3, 0, ErrNoCluster, 1, "NC"},
		{"overflow", 3, 0, ErrOverflow, 1, "UO"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newPipeUpstream(t)
			up.fails, up.err = tc.fails, tc.err
			rec := newRecorder()
			tp := cluster("c")
			if tc.attempts > 0 {
				tp.MaxConnectAttempts = wrapperspb.UInt32(tc.attempts)
			}
			client, done := serve(t, context.Background(), tp, up, rec)
			if tc.wantFlags == "-" {
				backend := up.backend(t)
				backend.Close()
				client.Close()
			} else if got := readAll(t, client); got != "" {
				t.Errorf("client got %q", got)
			}
			waitDone(t, done)
			s := <-rec.closed
			if up.dials != tc.wantDials || s.ConnectAttempts != tc.wantDials || s.ResponseFlags() != tc.wantFlags {
				t.Errorf("dials %d attempts %d flags %s; want %d, %s", up.dials, s.ConnectAttempts, s.ResponseFlags(), tc.wantDials, tc.wantFlags)
			}
		})
	}
}

func TestContextEndsSession(t *testing.T) {
	up := newPipeUpstream(t)
	ctx, cancel := context.WithCancel(context.Background())
	client, done := serve(t, ctx, cluster("c"), up, nil)
	backend := up.backend(t)
	cancel()
	waitDone(t, done)
	readAll(t, client)
	readAll(t, backend)
}

func TestSourceIPHash(t *testing.T) {
	up := newPipeUpstream(t)
	tp := cluster("c")
	tp.HashPolicy = []*typev3.HashPolicy{{PolicySpecifier: &typev3.HashPolicy_SourceIp_{SourceIp: &typev3.HashPolicy_SourceIp{}}}}
	for range 2 {
		client, done := serve(t, context.Background(), tp, up, nil)
		up.backend(t).Close()
		client.Close()
		waitDone(t, done)
	}
	if len(up.hashKeys) != 2 || up.hashKeys[0] != up.hashKeys[1] || up.hashKeys[0] != sourceIPHash(netip.MustParseAddr("10.1.2.3")) {
		t.Errorf("hash keys %v", up.hashKeys)
	}
}

func TestDirect(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dst := netip.MustParseAddrPort(ln.Addr().String())
	d := &Direct{
		OriginalDst: map[string]netip.Addr{"PassthroughCluster": {}, "InboundPassthroughCluster": netip.MustParseAddr("127.0.0.6")},
		Static:      map[string][]string{"BlackHoleCluster": nil, "s": {ln.Addr().String()}},
	}
	ctx := context.Background()
	restored := &listener.Conn{Destination: dst, Restored: true}
	for _, tc := range []struct {
		cluster string
		conn    *listener.Conn
		want    error
	}{
		{"PassthroughCluster", restored, nil},
		{"InboundPassthroughCluster", restored, nil},
		{"PassthroughCluster", &listener.Conn{Destination: dst}, ErrNoHealthyUpstream},
		{"BlackHoleCluster", restored, ErrNoHealthyUpstream},
		{"s", nil, nil},
		{"nope", restored, ErrNoCluster},
	} {
		c, err := d.Dial(ctx, tc.cluster, tc.conn)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.cluster, err, tc.want)
		}
		if c != nil {
			if tc.cluster == "InboundPassthroughCluster" {
				if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.6" {
					t.Errorf("inbound passthrough bound to %s", got)
				}
			}
			c.Close()
		}
	}
}

// TestUpstreamPeerIdentity: the identity an upstream connection reports
// (PeerIdentifier) is the session's UpstreamPeerIdentity; plain
// connections leave it empty.
func TestUpstreamPeerIdentity(t *testing.T) {
	for _, peer := range []string{"spiffe://cluster.local/ns/shop/sa/reviews", ""} {
		up := newPipeUpstream(t)
		up.peer = peer
		obs := newRecorder()
		client, done := serve(t, context.Background(), cluster("c"), up, obs)
		backend := up.backend(t)
		client.Close()
		backend.Close()
		waitDone(t, done)
		select {
		case s := <-obs.closed:
			if s.UpstreamPeerIdentity != peer {
				t.Errorf("UpstreamPeerIdentity %q, want %q", s.UpstreamPeerIdentity, peer)
			}
		case <-time.After(waitFor):
			t.Fatal("session not closed")
		}
	}
}
