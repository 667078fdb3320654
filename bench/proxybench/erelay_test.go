package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestEpollRelay runs the goepoll pairs' relays in process, both ways of
// waiting: client → A (plain) → TLS 1.3 → B → echo server. Several
// connections at once carry 16 MiB each (more than the sockets on the way
// hold), written before the client reads, so that the sockets fill and
// the loops must hold output back and resume on writability; the echo
// must come back byte for byte. A client's close must close the relays'
// upstream connections.
func TestEpollRelay(t *testing.T) {
	for _, nested := range []bool{true, false} {
		t.Run(fmt.Sprintf("nested=%v", nested), func(t *testing.T) {
			if !nested && runtime.GOMAXPROCS(0) < 2 {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2)) // the raw loop holds one P
			}
			testEpollRelay(t, nested)
		})
	}
}

func testEpollRelay(t *testing.T, nested bool) {
	certs, err := writeCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	serverLeg := parseLeg(t, "-cert", certs.CertFile, "-key", certs.KeyFile)
	clientLeg := parseLeg(t, "-ca", certs.CAFile, "-server-name", certs.ServerName)
	serverCfg, err := serverLeg.serverTLS()
	if err != nil {
		t.Fatal(err)
	}
	clientCfg, err := clientLeg.clientTLS()
	if err != nil {
		t.Fatal(err)
	}

	echo, closed := startEcho(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	serve := func(upstream string, srv, cli bool) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s, c := serverCfg, clientCfg
		if !srv {
			s = nil
		}
		if !cli {
			c = nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveErelay(ctx, ln, upstream, s, c, nested); err != nil {
				t.Errorf("serveErelay: %v", err)
			}
		}()
		return ln.Addr().String()
	}
	b := serve(echo, true, false)
	a := serve(b, false, true)
	defer func() {
		cancel()
		wg.Wait()
	}()

	const conns, size = 3, 16 << 20
	var cw sync.WaitGroup
	for i := range conns {
		cw.Add(1)
		go func() {
			defer cw.Done()
			if err := echoThrough(a, size); err != nil {
				t.Errorf("connection %d: %v", i, err)
			}
		}()
	}
	cw.Wait()
	for i := range conns {
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("echo server saw %d of %d connections closed after the clients closed theirs", i, conns)
		}
	}
}

// parseLeg parses a leg's flags from args.
func parseLeg(t *testing.T, args ...string) legFlags {
	t.Helper()
	fs := flag.NewFlagSet("leg", flag.ContinueOnError)
	l := addLegFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return l
}

// startEcho serves an echo on loopback; closed receives once per
// connection that ended (the client side closed it).
func startEcho(t *testing.T) (string, <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	closed := make(chan struct{}, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				closed <- struct{}{}
			}()
		}
	}()
	return ln.Addr().String(), closed
}

// echoThrough writes size random bytes to addr, starts reading only after
// the whole write was handed to the kernel or a pause, and checks the echo.
func echoThrough(addr string, size int) error {
	// A small receive buffer: the relays' writes back to the client soon
	// find it full, and the back-pressure reaches every socket on the way.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	want := make([]byte, size)
	if _, err := rand.Read(want); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		werr <- err
	}()
	select {
	case err := <-werr: // the buffers on the way held it all
		werr <- err
	case <-time.After(300 * time.Millisecond): // full: the relays are holding back
	}
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if !bytes.Equal(got, want) {
		return errors.New("the echo differs from what was sent")
	}
	return nil
}
