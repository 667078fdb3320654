package pool_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server is a loopback HTTP/1.1 server whose requests wait for release
// when held.
type server struct {
	*httptest.Server
	hold    chan struct{}
	arrived chan struct{}
	closes  atomic.Int64
	once    sync.Once
}

func newServer(t *testing.T) *server {
	s := &server{hold: make(chan struct{}), arrived: make(chan struct{}, 100)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			s.arrived <- struct{}{}
			<-s.hold
		}
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			s.closes.Add(1)
		}
	}
	s.Start()
	t.Cleanup(func() {
		s.release()
		s.Close()
	})
	return s
}

func (s *server) release() { s.once.Do(func() { close(s.hold) }) }

func newPool(t testing.TB, addr string, th circuit.Thresholds, proto pool.Protocol, dial func(context.Context) (net.Conn, error)) *pool.Pool {
	t.Helper()
	ap := netip.MustParseAddrPort(addr)
	h := host.New(host.Endpoint{Address: host.Address{Kind: host.Socket, Host: ap.Addr().String(), IP: ap.Addr(), Port: uint32(ap.Port())}}, nil)
	if dial == nil {
		dial = func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	p, err := pool.New(pool.Config{Host: h, Breakers: circuit.New(th), Protocol: proto, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func roundTrip(p *pool.Pool, path string) error {
	req, _ := http.NewRequest(http.MethodGet, "http://backend"+path, nil)
	resp, _, err := p.RoundTrip(context.Background(), req, false)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

func TestNewValidates(t *testing.T) {
	h := host.New(host.Endpoint{}, nil)
	br := circuit.New(circuit.DefaultThresholds())
	dial := func(context.Context) (net.Conn, error) { return nil, errors.New("no") }
	cases := []struct {
		name string
		cfg  pool.Config
	}{
		{"no host", pool.Config{Breakers: br, Dial: dial}},
		{"no breakers", pool.Config{Host: h, Dial: dial}},
		{"no dial", pool.Config{Host: h, Breakers: br}},
		{"bad protocol", pool.Config{Host: h, Breakers: br, Dial: dial, Protocol: pool.NumProtocols}},
	}
	for _, tc := range cases {
		if _, err := pool.New(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

// TestDrain: idle connections close at once, busy ones after their
// request.
func TestDrain(t *testing.T) {
	s := newServer(t)
	p := newPool(t, s.Listener.Addr().String(), circuit.DefaultThresholds(), pool.HTTP1, nil)
	done := make(chan error, 1)
	go func() { done <- roundTrip(p, "/hold") }()
	<-s.arrived
	if err := roundTrip(p, "/"); err != nil { // a second connection, idle afterwards
		t.Fatal(err)
	}
	p.Drain()
	deadline := time.Now().Add(5 * time.Second)
	for s.closes.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("idle connection not closed by Drain")
		}
		time.Sleep(time.Millisecond)
	}
	s.release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for !p.Empty() {
		if time.Now().After(deadline) {
			t.Fatalf("busy connection not closed after its request: %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnectFailureFailsWaiters: HTTP/2 requests waiting for a
// connection being dialled fail with it, as Envoy's pending requests do.
func TestConnectFailureFailsWaiters(t *testing.T) {
	gate := make(chan struct{})
	var dials atomic.Int64
	dial := func(ctx context.Context) (net.Conn, error) {
		dials.Add(1)
		<-gate
		return nil, errors.New("connection refused")
	}
	p := newPool(t, "127.0.0.1:9", circuit.DefaultThresholds(), pool.HTTP2, dial)
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() { errs <- roundTrip(p, "/") }()
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Pending != n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	for range n {
		var e *pool.Error
		if err := <-errs; !errors.As(err, &e) || e.Kind != pool.ConnectFailure || e.Kind.Flag() != "UF" {
			t.Errorf("error %v, want a connect failure", err)
		}
	}
	if d := dials.Load(); d != 1 {
		t.Errorf("%d dials, want 1", d)
	}
}

// TestCloseFailsWaiters: closing the pool fails its pending requests.
func TestCloseFailsWaiters(t *testing.T) {
	s := newServer(t)
	th := circuit.DefaultThresholds()
	th.MaxConnections = 1
	p := newPool(t, s.Listener.Addr().String(), th, pool.HTTP1, nil)
	first := make(chan error, 1)
	go func() { first <- roundTrip(p, "/hold") }()
	<-s.arrived
	second := make(chan error, 1)
	go func() { second <- roundTrip(p, "/") }()
	deadline := time.Now().Add(5 * time.Second)
	for p.Stats().Pending != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	p.Close()
	if err := <-second; !errors.Is(err, pool.ErrClosed) {
		t.Errorf("pending request: %v", err)
	}
	if err := <-first; err == nil {
		t.Error("in-flight request survived Close")
	}
	if err := roundTrip(p, "/"); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
