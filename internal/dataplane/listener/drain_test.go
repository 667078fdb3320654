package listener_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// drainFilters builds drainHandlers, one per built filter, named after
// the HCM's RDS name, and keeps every one it built.
type drainFilters struct {
	mu    sync.Mutex
	built []*drainHandler
}

func (f *drainFilters) Build(fl *listenerv3.Filter) (listener.ConnHandler, error) {
	h := &hcmv3.HttpConnectionManager{}
	if err := anypb.UnmarshalTo(fl.GetTypedConfig(), h, proto.UnmarshalOptions{}); err != nil {
		return nil, err
	}
	d := &drainHandler{name: h.GetRds().GetRouteConfigName()}
	f.mu.Lock()
	f.built = append(f.built, d)
	f.mu.Unlock()
	return d, nil
}

// handlers returns the handlers built for name, oldest first.
func (f *drainFilters) handlers(name string) []*drainHandler {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*drainHandler
	for _, d := range f.built {
		if d.name == name {
			out = append(out, d)
		}
	}
	return out
}

// drainHandler echoes lines as "<name>:<line>", or "<name>-draining:<line>"
// once drained, as an HTTP server adds Connection: close to its answers.
type drainHandler struct {
	name string
	mu   sync.Mutex
	n    int // Drain calls
	shut bool
}

func (d *drainHandler) Drain() { d.mu.Lock(); d.n++; d.mu.Unlock() }

func (d *drainHandler) Close() error { d.mu.Lock(); d.shut = true; d.mu.Unlock(); return nil }

func (d *drainHandler) state() (drains int, closed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n, d.shut
}

func (d *drainHandler) Serve(ctx context.Context, c *listener.Conn) {
	r := bufio.NewReader(c)
	for ctx.Err() == nil {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag := d.name
		if n, _ := d.state(); n > 0 {
			tag += "-draining"
		}
		fmt.Fprintf(c, "%s:%s", tag, line)
	}
}

func drainListener(t testing.TB, name, route string, dir corev3.TrafficDirection) *listenerv3.Listener {
	t.Helper()
	a, err := anypb.New(&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: route}}})
	if err != nil {
		t.Fatal(err)
	}
	return &listenerv3.Listener{
		Name:             name,
		TrafficDirection: dir,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}}}},
	}
}

func startDrain(t *testing.T, cfg listener.Config, ls ...*listenerv3.Listener) (*listener.Manager, *drainFilters) {
	t.Helper()
	f := &drainFilters{}
	cfg.Filters = listener.Registry{hcmTypeURL: f}
	cfg.OriginalDst = func(*net.TCPConn) (netip.AddrPort, error) { return netip.AddrPort{}, errors.New("no capture in tests") }
	m, err := listener.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Update(ls); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return m, f
}

func addrOf(t testing.TB, m *listener.Manager, name string) string {
	t.Helper()
	a, ok := m.Addr(name)
	if !ok {
		t.Fatalf("listener %q is not bound", name)
	}
	return a.String()
}

// TestDrainSelectsInbound drains the inbound listeners only, as
// /drain_listeners?inboundonly&graceful: their handlers are told (once),
// they keep accepting and serving; outbound ones are untouched; an inbound
// listener a later update changes starts drained.
func TestDrainSelectsInbound(t *testing.T) {
	in := drainListener(t, "in", "in", corev3.TrafficDirection_INBOUND)
	out := drainListener(t, "out", "out", corev3.TrafficDirection_OUTBOUND)
	m, f := startDrain(t, listener.Config{}, in, out)
	inAddr, outAddr := addrOf(t, m, "in"), addrOf(t, m, "out")
	established := dial(t, "", inAddr)
	er := bufio.NewReader(established)
	if got := lineExchange(t, er, established, "a"); got != "in:a" {
		t.Fatalf("before drain: %q", got)
	}

	m.Drain(listener.Inbound)
	m.Drain(listener.Inbound) // idempotent per handler
	if n, _ := f.handlers("in")[0].state(); n != 1 {
		t.Errorf("inbound handler drained %d times, want 1", n)
	}
	if n, _ := f.handlers("out")[0].state(); n != 0 {
		t.Errorf("outbound handler drained %d times, want 0", n)
	}
	if got := lineExchange(t, er, established, "b"); got != "in-draining:b" {
		t.Errorf("established connection during drain: %q", got)
	}
	fresh := dial(t, "", inAddr) // still accepting
	if got := lineExchange(t, bufio.NewReader(fresh), fresh, "c"); got != "in-draining:c" {
		t.Errorf("new connection during drain: %q", got)
	}
	o := dial(t, "", outAddr)
	if got := lineExchange(t, bufio.NewReader(o), o, "d"); got != "out:d" {
		t.Errorf("outbound during inbound drain: %q", got)
	}

	// A changed inbound listener: its new generation starts drained, the
	// old one (still serving the established connection) stays drained.
	in2 := proto.Clone(in).(*listenerv3.Listener)
	in2.StatPrefix = "changed"
	if err := m.Update([]*listenerv3.Listener{in2, out}); err != nil {
		t.Fatal(err)
	}
	hs := f.handlers("in")
	if len(hs) != 2 {
		t.Fatalf("%d inbound handlers built, want 2", len(hs))
	}
	if n, _ := hs[1].state(); n != 1 {
		t.Errorf("new inbound generation drained %d times, want 1", n)
	}
}

// TestReplacedListenerIsDrainedAndReleased: an update that changes a
// listener tells the old generation's handlers to drain (its clients move
// to the new one) and closes them once their last connection ended; the
// socket stays open throughout.
func TestReplacedListenerIsDrainedAndReleased(t *testing.T) {
	l := drainListener(t, "l", "v1", corev3.TrafficDirection_OUTBOUND)
	m, f := startDrain(t, listener.Config{}, l)
	addr := addrOf(t, m, "l")
	old := dial(t, "", addr)
	or := bufio.NewReader(old)
	if got := lineExchange(t, or, old, "a"); got != "v1:a" {
		t.Fatalf("before update: %q", got)
	}
	if err := m.Update([]*listenerv3.Listener{drainListener(t, "l", "v2", corev3.TrafficDirection_OUTBOUND)}); err != nil {
		t.Fatal(err)
	}
	if got := addrOf(t, m, "l"); got != addr {
		t.Errorf("socket changed: %s → %s", addr, got)
	}
	if got := lineExchange(t, or, old, "b"); got != "v1-draining:b" {
		t.Errorf("established connection after the update: %q", got)
	}
	v1 := f.handlers("v1")[0]
	if _, closed := v1.state(); closed {
		t.Error("old handler closed while a connection still uses it")
	}
	c := dial(t, "", addr)
	if got := lineExchange(t, bufio.NewReader(c), c, "c"); got != "v2:c" {
		t.Errorf("new connection: %q", got)
	}
	old.Close()
	deadline := time.Now().Add(waitFor)
	for {
		if _, closed := v1.state(); closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("old handler not closed after its last connection ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, closed := f.handlers("v2")[0].state(); closed {
		t.Error("the current handler was closed")
	}
}

// TestStopListening closes the selected sockets (connections are refused)
// while accepted connections go on, and keeps them closed across updates.
func TestStopListening(t *testing.T) {
	in := drainListener(t, "in", "in", corev3.TrafficDirection_INBOUND)
	out := drainListener(t, "out", "out", corev3.TrafficDirection_OUTBOUND)
	m, _ := startDrain(t, listener.Config{}, in, out)
	inAddr := addrOf(t, m, "in")
	established := dial(t, "", inAddr)
	er := bufio.NewReader(established)
	if got := lineExchange(t, er, established, "a"); got != "in:a" {
		t.Fatalf("got %q", got)
	}
	m.StopListening(listener.Inbound)
	if _, ok := m.Addr("in"); ok {
		t.Error("Addr reports a stopped listener as bound")
	}
	if c, err := net.DialTimeout("tcp", inAddr, waitFor); err == nil {
		c.Close()
		t.Error("stopped listener still accepts")
	}
	if got := lineExchange(t, er, established, "b"); got != "in:b" {
		t.Errorf("established connection after stop: %q", got)
	}
	in2 := proto.Clone(in).(*listenerv3.Listener)
	in2.StatPrefix = "changed"
	if err := m.Update([]*listenerv3.Listener{in2, out}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Addr("in"); ok {
		t.Error("an update bound a stopped listener again")
	}
	o := dial(t, "", addrOf(t, m, "out"))
	if got := lineExchange(t, bufio.NewReader(o), o, "c"); !strings.HasPrefix(got, "out:") {
		t.Errorf("outbound after stopping inbound: %q", got)
	}
}
