package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"sync"
	"syscall"
)

// relayNetnsPair is the floor of a Go proxy pair on the netns path: two
// byte relays (this binary, re-executed as "proxybench _relay" with
// GOMAXPROCS=1) with the same TLS 1.3 leg as nginx-netns and no HTTP at
// all — per client connection one upstream connection and two goroutines
// copying bytes. Whatever it adds over direct-netns is what Go's runtime,
// netpoller and crypto/tls cost before any proxy logic; no HTTP proxy
// written in Go can add less. Its baseline is direct-netns.
type relayNetnsPair struct{}

func init() { registerPair(relayNetnsPair{}) }

func (relayNetnsPair) Name() string         { return "gorelay-netns" }
func (relayNetnsPair) Baseline() string     { return "direct-netns" }
func (relayNetnsPair) Available(*Env) error { return netnsAvailable() }

// startRelay starts one relay (role A or B) in network namespace ns.
func startRelay(ctx context.Context, e *Env, ns, role string, args []string) (*proc, error) {
	return startProc(ctx, e, fmt.Sprintf("relay-%s-%d", role, e.next()), "ip",
		append([]string{"netns", "exec", ns, e.Self, "_relay"}, args...), []string{"GOMAXPROCS=1"}, true)
}

func (relayNetnsPair) Start(ctx context.Context, e *Env, _ string) (*Instance, error) {
	t, err := e.topology(ctx)
	if err != nil {
		return nil, err
	}
	addrA := t.client.addr.String() + ":15081"
	addrB := t.server.addr.String() + ":15444"
	b, err := startRelay(ctx, e, t.server.name, "B", []string{"-listen", addrB,
		"-upstream", fmt.Sprintf("127.0.0.1:%d", echoPort), "-cert", e.Certs.CertFile, "-key", e.Certs.KeyFile})
	if err != nil {
		return nil, err
	}
	a, err := startRelay(ctx, e, t.client.name, "A", []string{"-listen", addrA, "-upstream", addrB,
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
	leg := addLegFlags(fs)
	upstream := fs.String("upstream", "", "upstream host:port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *upstream == "" {
		return errors.New("-upstream is required")
	}
	dial := func() (net.Conn, error) { return net.Dial("tcp", *upstream) }
	cfg, err := leg.clientTLS()
	if err != nil {
		return err
	}
	if cfg != nil {
		dial = func() (net.Conn, error) { return tls.Dial("tcp", *upstream, cfg) }
	}
	ln, err := leg.listener(nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go relayConn(c, dial)
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
