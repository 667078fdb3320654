//go:build linux

package sockio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/sockio"
)

// pair returns a wrapped client connection and the server side (plain).
func pair(t testing.TB) (*sockio.Conn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	w, ok := sockio.Wrap(c).(*sockio.Conn)
	if !ok {
		t.Fatalf("Wrap(%T) is not a *sockio.Conn", c)
	}
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s.(*net.TCPConn)
}

func TestWrapOthers(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := sockio.Wrap(a); got != a {
		t.Fatalf("Wrap(pipe) = %T, want the pipe itself", got)
	}
}

// TestLargeWriteAndRead moves 8 MiB each way while the other side reads in
// small pieces, so that writes fill the socket buffers and wait for
// writability (EAGAIN) in the poller, and reads wait for readability.
func TestLargeWriteAndRead(t *testing.T) {
	c, s := pair(t)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := c.Write(data)
		if err == nil && n != len(data) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got := make([]byte, 0, len(data))
	buf := make([]byte, 1500)
	for len(got) < len(data) {
		n, err := s.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}

	go func() {
		_, err := s.Write(data)
		errc <- err
	}()
	got = got[:0]
	for len(got) < len(data) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("Read returned 0 bytes and no error")
		}
		got = append(got, buf[:n]...)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
}

func TestEOFAndCloseWrite(t *testing.T) {
	c, s := pair(t)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(s); err != nil || len(b) != 0 {
		t.Fatalf("server ReadAll = %q, %v", b, err)
	}
	if _, err := s.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "bye" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestDeadlineAndClose(t *testing.T) {
	c, _ := pair(t)
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Read(make([]byte, 8))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v; want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Read returned after %v", d)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 8))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read blocked by Close: %v; want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v; want net.ErrClosed", err)
	}
}

func TestResetIsOpError(t *testing.T) {
	c, s := pair(t)
	// An abortive close: the peer answers later writes with RST.
	if err := s.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for err == nil && time.Now().Before(deadline) {
		_, err = c.Write([]byte("ping"))
		if err == nil {
			_, err = c.Read(make([]byte, 8))
		}
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after a reset: %T %v; want a *net.OpError wrapping ECONNRESET", err, err)
	}
	var se *os.SyscallError
	if !errors.As(err, &se) || (oe.Op != "read" && oe.Op != "write") {
		t.Fatalf("after a reset: %#v; want op read or write with an *os.SyscallError", oe)
	}
}

// TestNoAllocations: a write and a read allocate nothing (the raw path;
// under -race the TCPConn's own, which allocates nothing either).
func TestNoAllocations(t *testing.T) {
	c, s := pair(t)
	msg, buf := make([]byte, 512), make([]byte, 512)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per write and read, want 0", allocs)
	}
}

// BenchmarkEcho is a 1 KiB write and its echo on loopback, through
// *net.TCPConn and through Conn (one P: GOMAXPROCS as the sidecar runs).
func BenchmarkEcho(b *testing.B) {
	for _, raw := range []bool{false, true} {
		name := "TCPConn"
		if raw {
			name = "sockio"
		}
		b.Run(name, func(b *testing.B) {
			w, s := pair(b)
			var c net.Conn = w
			if !raw {
				c = w.TCPConn
			}
			go func() { _, _ = io.Copy(s, s) }()
			msg := make([]byte, 1024)
			buf := make([]byte, 1024)
			b.SetBytes(1024)
			for b.Loop() {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
