//go:build linux

package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a *net.TCPConn whose Read and Write are raw system calls.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The callbacks handed to rc are made once (a closure per call would
	// be an allocation per read and per write); their arguments and
	// results go through these fields, one mutex per direction.
	rmu    sync.Mutex
	rp     []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wp      []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(uintptr) bool
}

// Wrap returns c as a *Conn when it is a *net.TCPConn, else c itself.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{TCPConn: tc, rc: rc}
	w.readFn, w.writeFn = w.readOnce, w.writeAll
	return w
}

// maxRW bounds one system call, as internal/poll does for streams.
const maxRW = 1 << 30

// Read reads like net.Conn's Read: at least one byte, io.EOF at the end
// of the stream.
func (c *Conn) Read(p []byte) (int, error) {
	if raceEnabled {
		return c.TCPConn.Read(p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	c.rmu.Lock()
	c.rp, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rp = nil
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, err // closed, deadline: the poller's error in a *net.OpError
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readOnce is the read callback: false (wait for readability in the
// poller) when the socket has nothing.
func (c *Conn) readOnce(fd uintptr) bool {
	for {
		r, e := RawRead(fd, c.rp)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerrno = r, e
		return true
	}
}

// Write writes all of p (or fails) like net.Conn's Write.
func (c *Conn) Write(p []byte) (int, error) {
	if raceEnabled {
		return c.TCPConn.Write(p)
	}
	c.wmu.Lock()
	c.wp, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wp = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

// writeAll is the write callback: it writes until all of wp is out, or
// returns false (wait for writability in the poller) when the socket's
// buffer is full.
func (c *Conn) writeAll(fd uintptr) bool {
	for c.wn < len(c.wp) {
		chunk := c.wp[c.wn:]
		if len(chunk) > maxRW {
			chunk = chunk[:maxRW]
		}
		w, e := RawWrite(fd, chunk)
		switch e {
		case 0:
			c.wn += w
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}

// ReadFrom is the TCPConn's (splice from another TCP connection), with a
// *Conn source unwrapped so that the kernel still sees two sockets.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if src, ok := r.(*Conn); ok {
		r = src.TCPConn
	}
	return c.TCPConn.ReadFrom(r)
}

// WriteTo is the TCPConn's (splice to another TCP connection), with a
// *Conn destination unwrapped.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if dst, ok := w.(*Conn); ok {
		w = dst.TCPConn
	}
	return c.TCPConn.WriteTo(w)
}

func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// RawRead is one read(2) of fd into p (non-empty) as a raw system call:
// no syscall entry into the runtime, so the P is never handed off. For a
// non-blocking descriptor only.
func RawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), e
}

// RawWrite is one write(2) of p (non-empty) to fd as a raw system call,
// like RawRead.
func RawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(r), e
}
