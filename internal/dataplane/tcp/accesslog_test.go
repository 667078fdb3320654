package tcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// fakeAccessLogs compiles access_log entries into a channel of sessions;
// an entry named "bad" is an error.
type fakeAccessLogs struct {
	got      chan *Session
	compiled [][]*accesslogv3.AccessLog
}

func (f *fakeAccessLogs) CompileTCP(logs []*accesslogv3.AccessLog) (func(*Session), error) {
	f.compiled = append(f.compiled, logs)
	for _, l := range logs {
		if l.GetName() == "bad" {
			return nil, errors.New("access_log[0] (bad): unknown command operator")
		}
	}
	if len(logs) == 0 {
		return nil, nil
	}
	return func(s *Session) { f.got <- s }, nil
}

// TestAccessLogWiring: Build compiles the tcp_proxy's access_log through
// Config.AccessLogs (an error rejects the filter), and the proxy logs each
// session once it is closed, with its final fields; a failed connection
// is logged too.
func TestAccessLogWiring(t *testing.T) {
	als := &fakeAccessLogs{got: make(chan *Session, 4)}
	up := newPipeUpstream(t)
	b, err := NewBuilder(Config{Upstream: up, AccessLogs: als})
	if err != nil {
		t.Fatal(err)
	}
	build := func(name string) (listener.ConnHandler, error) {
		tp := cluster("c")
		tp.AccessLog = []*accesslogv3.AccessLog{{Name: name}}
		a, err := anypb.New(tp)
		if err != nil {
			t.Fatal(err)
		}
		return b.Build(&listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}})
	}
	if _, err := build("bad"); err == nil || !strings.Contains(err.Error(), "tcp_proxy: access_log[0] (bad)") {
		t.Fatalf("bad access log: %v", err)
	}
	h, err := build("envoy.access_loggers.file")
	if err != nil {
		t.Fatal(err)
	}
	client, server := tcpPair(t)
	down := &listener.Conn{Conn: server, Source: netip.MustParseAddrPort("10.1.2.3:4567"), Transport: listener.TransportRawBuffer}
	done := make(chan struct{})
	go func() { defer close(done); h.Serve(context.Background(), down) }()
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	client.CloseWrite()
	back := up.backend(t)
	if got := readAll(t, back); got != "ping" {
		t.Errorf("upstream read %q", got)
	}
	back.Close()
	client.Close()
	select {
	case s := <-als.got:
		if s.Cluster != "c" || s.ReceivedBytes() != 4 || s.Upstream == nil {
			t.Errorf("logged session: cluster %q, received %d, upstream %v", s.Cluster, s.ReceivedBytes(), s.Upstream)
		}
	case <-time.After(waitFor):
		t.Fatal("session not logged")
	}
	<-done

	// No upstream: logged with its flags.
	b2, err := NewBuilder(Config{Upstream: &Direct{}, AccessLogs: als})
	if err != nil {
		t.Fatal(err)
	}
	tp := cluster("missing")
	tp.AccessLog = []*accesslogv3.AccessLog{{Name: "file"}}
	a, _ := anypb.New(tp)
	h2, err := b2.Build(&listenerv3.Filter{ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}})
	if err != nil {
		t.Fatal(err)
	}
	c2, s2 := net.Pipe()
	defer c2.Close()
	h2.Serve(context.Background(), &listener.Conn{Conn: s2})
	select {
	case s := <-als.got:
		if s.ResponseFlags() == "-" {
			t.Errorf("failed session logged without flags")
		}
	case <-time.After(waitFor):
		t.Fatal("failed session not logged")
	}
}
