//go:build linux

package pool

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// staleCheck returns a check, without blocking, of whether the peer of an
// idle connection closed it or sent bytes nobody asked for: a
// non-blocking MSG_PEEK of one byte (no goroutine watches idle
// connections). Connections that are not sockets are never found stale.
func staleCheck(raw net.Conn) func() bool {
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return neverStale
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return neverStale
	}
	var (
		buf   [1]byte
		stale bool
	)
	probe := func(fd uintptr) bool {
		// A raw system call: MSG_DONTWAIT never blocks, and the runtime's
		// syscall entry would let sysmon hand the P to another thread
		// (see internal/dataplane/sockio).
		_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&buf[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		// Success is stale either way: a byte nobody asked for, or EOF.
		stale = errno != unix.EAGAIN && errno != unix.EINTR
		return true
	}
	return func() bool {
		if err := rc.Read(probe); err != nil {
			return true
		}
		return stale
	}
}
