// Package sockio gives the proxy's TCP connections reads and writes that
// do not hand the scheduler's P to another thread.
//
// A net.TCPConn read or write is a system call made through the runtime's
// syscall entry: while it runs, the goroutine's P is "in a system call",
// and the runtime's monitor thread (sysmon) takes the P away from a call
// that spans one of its ticks (20 µs and up) whenever no other P is idle.
// With one P (GOMAXPROCS=1, the sidecar's one worker) that is every long
// enough write: the P is handed to another thread (a futex wake), the
// writing thread finds it gone when the call returns and sleeps (another
// futex), and every such take-over keeps sysmon polling at its shortest
// interval. A socket write through the kernel's TCP stack and a veth pair
// often takes that long, so a busy sidecar paid about one hand-off per
// request and a few thousand sysmon wake-ups a second (strace -c: ~1
// futex and ~4 nanosleep calls per proxied request for the pair).
//
// The sockets are non-blocking (the runtime's poller owns them), so a read
// or write never waits in the kernel: Conn issues them as raw system
// calls inside syscall.RawConn's Read and Write, which still wait for
// readiness (and honour deadlines and Close) through the poller when the
// call would block. Errors are reported as net.Conn's are: *net.OpError
// wrapping the *os.SyscallError, io.EOF at the end of the stream, and the
// poller's errors (net.ErrClosed, os.ErrDeadlineExceeded) unchanged.
//
// Under the race detector (-race) Read and Write go through the TCPConn:
// the poller's reads and writes carry the happens-before edges the
// detector needs across a connection, raw system calls do not. The raw
// path is exercised by the tests without -race.
//
// Wrap returns other connections (TLS, Unix sockets, test pipes) as they
// are. Everything else of *net.TCPConn (CloseWrite, SyscallConn,
// SetNoDelay, ReadFrom/WriteTo with splice) stays the embedded TCPConn's.
package sockio
