package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"sync"
	"syscall"

	"github.com/trellismesh/trellis/internal/dataplane/sockio"
)

// relayNetnsPair is the floor of a Go proxy pair on the netns path: two
// byte relays (this binary, re-executed as "proxybench _relay" with
// GOMAXPROCS=1) with the same TLS 1.3 leg as nginx-netns and no HTTP at
// all — per client connection one upstream connection and two goroutines
// copying bytes. Whatever it adds over direct-netns is what Go's runtime,
// netpoller and crypto/tls cost before any proxy logic; no HTTP proxy
// written in Go can add less (in Go's I/O model). Its baseline is
// direct-netns.
//
// Its variants:
//   - gorelay-sockio-netns: the sockets read and write with the
//     sidecar's raw system calls (internal/dataplane/sockio), so the
//     scheduler's P is not handed off during long writes: Go's I/O model
//     as the sidecar uses it.
//   - goepoll-netns: its own I/O loop (erelay.go), waiting in a
//     raw epoll_wait: the floor of a Go proxy with nginx's I/O model.
//   - goepoll-nested-netns: that loop waiting in Go's poller
//     (the loop's epoll registered there), with one P.
//   - goserial-netns: one goroutine per client connection that
//     reads an HTTP/1.1 message (head, then a Content-Length body) from
//     one side and writes it whole to the other, request then response,
//     with sockio's reads and writes: the sidecar's I/O model (one
//     goroutine per connection, requests in order, one write per message)
//     without its HTTP work.
type relayNetnsPair struct {
	name string
	cmd  []string // the relay process's subcommand and mode flags
	env  string   // its GOMAXPROCS
}

func init() {
	for _, p := range []relayNetnsPair{
		{"gorelay-netns", []string{"_relay"}, "GOMAXPROCS=1"},
		{"gorelay-sockio-netns", []string{"_relay", "-sockio"}, "GOMAXPROCS=1"},
		{"goepoll-netns", []string{"_erelay"}, "GOMAXPROCS=2"}, // one P for the loop, one for setup (erelayMain)
		{"goepoll-nested-netns", []string{"_erelay", "-nested"}, "GOMAXPROCS=1"},
		{"goserial-netns", []string{"_relay", "-sockio", "-serial"}, "GOMAXPROCS=1"},
	} {
		registerPair(p)
	}
}

func (p relayNetnsPair) Name() string       { return p.name }
func (relayNetnsPair) Baseline() string     { return "direct-netns" }
func (relayNetnsPair) Available(*Env) error { return netnsAvailable() }

// startRelay starts one relay (role A or B) in network namespace ns.
func (p relayNetnsPair) startRelay(ctx context.Context, e *Env, ns, role string, args []string) (*proc, error) {
	return startProc(ctx, e, fmt.Sprintf("relay-%s-%d", role, e.next()), "ip",
		append(append([]string{"netns", "exec", ns, e.Self}, p.cmd...), args...), []string{p.env}, true)
}

func (p relayNetnsPair) Start(ctx context.Context, e *Env, _ string) (*Instance, error) {
	t, err := e.topology(ctx)
	if err != nil {
		return nil, err
	}
	addrA := t.client.addr.String() + ":15081"
	addrB := t.server.addr.String() + ":15444"
	b, err := p.startRelay(ctx, e, t.server.name, "B", []string{"-listen", addrB,
		"-upstream", fmt.Sprintf("127.0.0.1:%d", echoPort), "-cert", e.Certs.CertFile, "-key", e.Certs.KeyFile})
	if err != nil {
		return nil, err
	}
	a, err := p.startRelay(ctx, e, t.client.name, "A", []string{"-listen", addrA, "-upstream", addrB,
		"-ca", e.Certs.CAFile, "-server-name", e.Certs.ServerName})
	if err != nil {
		b.stop()
		return nil, err
	}
	pa, errA := realPID(a.pid(), e.Self)
	pb, errB := realPID(b.pid(), e.Self)
	if errA != nil || errB != nil {
		a.stop()
		b.stop()
		return nil, fmt.Errorf("relay pids: %v %v", errA, errB)
	}
	return &Instance{
		Addr:    addrA,
		Netns:   t.client.name,
		Proxies: []Proxy{{Name: "A", PID: pa}, {Name: "B", PID: pb}},
		Stop:    func() { a.stop(); b.stop() },
	}, nil
}

// relayMain is the relay process: "proxybench _relay -listen ADDR -upstream
// HOST:PORT [-cert F -key F] [-ca F -server-name N]". -cert serves TLS,
// -ca dials the upstream over TLS. It prints "LISTENING host:port".
func relayMain(args []string) error {
	fs := flag.NewFlagSet("_relay", flag.ContinueOnError)
	raw := fs.Bool("sockio", false, "read and write the sockets with the sidecar's raw system calls (internal/dataplane/sockio)")
	serial := fs.Bool("serial", false, "relay HTTP/1.1 messages in turn on one goroutine per connection (Content-Length bodies only)")
	r, err := parseRelay(fs, args)
	if err != nil {
		return err
	}
	wrap := func(c net.Conn) net.Conn { return c }
	if *raw {
		wrap = sockio.Wrap
	}
	dial := func() (net.Conn, error) {
		c, err := net.Dial("tcp", r.upstream)
		if err != nil {
			return nil, err
		}
		if r.client == nil {
			return wrap(c), nil
		}
		tc := tls.Client(wrap(c), r.client)
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { <-ctx.Done(); r.ln.Close() }()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c = wrap(c)
		if r.server != nil {
			c = tls.Server(c, r.server)
		}
		if *serial {
			go serialConn(c, dial)
		} else {
			go relayConn(c, dial)
		}
	}
}

// relayConn copies bytes both ways between c and a new upstream connection
// until either side ends.
func relayConn(c net.Conn, dial func() (net.Conn, error)) {
	defer c.Close()
	u, err := dial()
	if err != nil {
		return
	}
	defer u.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.CopyBuffer(c, u, make([]byte, 32<<10))
		c.Close()
	}()
	_, _ = io.CopyBuffer(u, c, make([]byte, 32<<10))
	u.Close()
	wg.Wait()
}
