package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/trellismesh/trellis/internal/dataplane/sockio"
)

// erelayMain is the epoll relay process ("proxybench _erelay", same flags
// as _relay): the byte relay of gorelay-netns with its own I/O loop
// instead of a goroutine per direction. Connections are accepted, dialled
// and TLS-handshaken by goroutines on Go's poller; each established pair
// of sockets is then handed to one loop that owns them: an edge-triggered
// epoll of its own, waited on with a raw system call (the runtime sees a
// running goroutine, so no P is handed off and the scheduler is not
// involved per request), reads only on readiness until a short read, and
// writes straight to the peer, through crypto/tls over in-memory buffers
// on the TLS side. It is what a Go proxy could cost with nginx's I/O
// model, to compare with gorelay-netns (Go's model) and nginx-netns.
//
// It runs with GOMAXPROCS=2: the loop holds one P for good, the other
// runs the setup goroutines (accept, dial, handshakes) and is idle
// otherwise. Only the loop works while requests flow, one thread, as in
// every other pair.
func erelayMain(args []string) error {
	fs := flag.NewFlagSet("_erelay", flag.ContinueOnError)
	nested := fs.Bool("nested", false, "wait for the loop's epoll in Go's poller (GOMAXPROCS=1 suffices), not in a raw epoll_wait")
	r, err := parseRelay(fs, args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serveErelay(ctx, r.ln, r.upstream, r.server, r.client, *nested)
}

// serveErelay relays every connection accepted on ln to upstream until ctx
// ends, serving TLS with serverCfg and dialling the upstream over TLS with
// clientCfg when they are set. It closes ln. nested false needs two Ps
// (the loop holds one).
func serveErelay(ctx context.Context, ln net.Listener, upstream string, serverCfg, clientCfg *tls.Config, nested bool) error {
	l, err := newEloop()
	if err != nil {
		ln.Close()
		return err
	}
	l.nested = nested
	go func() {
		<-ctx.Done()
		ln.Close()
		l.wake() // a raw wait ends on the next event
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.setup(c.(*net.TCPConn), upstream, serverCfg, clientCfg)
		}
	}()
	if !nested {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	return l.run(ctx)
}

// eloop is the relay's I/O loop: the sockets it owns (sides, indexed by
// the id in their epoll events) and the pipe through which setup
// goroutines hand it new pairs.
type eloop struct {
	epfd      int
	wakeR     int // read end of the wake-up pipe, in the epoll
	wakeW     int
	sides     []*eside // by id; nil when closed
	free      []int32  // ids to reuse
	buf       []byte   // read buffer (the loop is one goroutine)
	plain     []byte   // decrypted bytes
	mu        sync.Mutex
	incoming  [][2]*eside // established pairs not yet registered
	closed    bool        // the loop has ended: no more hand-overs
	events    [64]syscall.EpollEvent
	wakeDrain [64]byte
	nested    bool // wait in Go's poller (runNested), not in a raw epoll_wait
}

// eside is one socket of a relayed pair.
type eside struct {
	id   int32
	fd   int
	peer *eside
	tls  *tls.Conn // nil for a plain socket
	mem  *memConn  // under tls
	out  []byte    // bytes not yet written to fd
	// stalled: this side stopped reading because its peer's out is full.
	stalled bool
}

const (
	wakeID  = -1      // the wake-up pipe's id in its epoll events
	epollET = 1 << 31 // EPOLLET (negative in package syscall)
	// sideEvents are the events a relayed socket is registered for.
	sideEvents = syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET
)

func newEloop() (*eloop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	l := &eloop{epfd: epfd, wakeR: p[0], wakeW: p[1], buf: make([]byte, 32<<10), plain: make([]byte, 32<<10)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeID}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.wakeR, &ev); err != nil {
		l.closeAll()
		return nil, fmt.Errorf("epoll_ctl pipe: %w", err)
	}
	return l, nil
}

// closeAll closes the loop's descriptors and every socket it owns or has
// been handed; later hand-overs are refused (closed).
func (l *eloop) closeAll() {
	l.mu.Lock()
	l.closed = true
	pending := l.incoming
	l.incoming = nil
	syscall.Close(l.wakeW)
	l.mu.Unlock()
	for _, p := range pending {
		syscall.Close(p[0].fd)
		syscall.Close(p[1].fd)
	}
	for _, s := range l.sides {
		if s != nil {
			l.closePair(s)
		}
	}
	syscall.Close(l.epfd)
	syscall.Close(l.wakeR)
}

// wake makes the loop's epoll report the wake-up pipe.
func (l *eloop) wake() {
	l.mu.Lock()
	if !l.closed {
		_, _ = syscall.Write(l.wakeW, []byte{1})
	}
	l.mu.Unlock()
}

// setup accepts one client connection: dials the upstream, runs the TLS
// handshake on whichever side has TLS (on Go's poller), takes both
// sockets off the poller and hands them to the loop.
func (l *eloop) setup(c *net.TCPConn, upstream string, serverCfg, clientCfg *tls.Config) {
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		c.Close()
		return
	}
	down := &eside{}
	up := &eside{}
	if serverCfg != nil {
		down.mem = &memConn{Conn: c, side: down}
		down.tls = tls.Server(down.mem, serverCfg)
		err = down.tls.Handshake()
	}
	if err == nil && clientCfg != nil {
		up.mem = &memConn{Conn: u, side: up}
		up.tls = tls.Client(up.mem, clientCfg)
		err = up.tls.Handshake()
	}
	if err == nil {
		down.fd, err = takeFD(c)
	}
	if err == nil {
		up.fd, err = takeFD(u.(*net.TCPConn))
		if err != nil {
			syscall.Close(down.fd)
		}
	}
	c.Close()
	u.Close()
	if err != nil {
		return
	}
	for _, s := range []*eside{down, up} {
		if s.mem != nil {
			s.mem.Conn = nil // from now on the loop feeds it
		}
	}
	down.peer, up.peer = up, down
	l.mu.Lock()
	if l.closed {
		syscall.Close(down.fd)
		syscall.Close(up.fd)
	} else {
		l.incoming = append(l.incoming, [2]*eside{down, up})
		_, _ = syscall.Write(l.wakeW, []byte{1})
	}
	l.mu.Unlock()
}

// takeFD returns a non-blocking duplicate of c's socket that Go's poller
// does not know; the caller then closes c.
func takeFD(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = syscall.Dup(int(fd)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	syscall.CloseOnExec(nfd)
	if err := syscall.SetNonblock(nfd, true); err != nil {
		syscall.Close(nfd)
		return -1, err
	}
	return nfd, nil
}

// run is the loop; it returns when ctx ends.
func (l *eloop) run(ctx context.Context) error {
	if l.nested {
		return l.runNested(ctx)
	}
	defer l.closeAll()
	for ctx.Err() == nil {
		n, errno := epollWaitRaw(l.epfd, l.events[:], -1)
		if errno == syscall.EINTR {
			runtime.Gosched() // the runtime asked for the P (preemption, GC)
			continue
		}
		if errno != 0 {
			return fmt.Errorf("epoll_wait: %w", errno)
		}
		l.dispatch(n)
	}
	return nil
}

// runNested is the loop waiting in Go's poller: the loop's epoll is
// itself registered there (an epoll descriptor is readable while it has
// ready events), so the goroutine parks like any other between events and
// the scheduler, timers and other goroutines run as usual. Each wake-up
// takes everything ready with a non-blocking epoll_wait. One RawRead call
// spans the whole loop: the poller's readiness is reset only when it
// starts, so an event after a drained epoll_wait is never lost.
func (l *eloop) runNested(ctx context.Context) error {
	defer l.closeAll()
	if err := syscall.SetNonblock(l.epfd, true); err != nil {
		return err
	}
	// f registers the epoll descriptor with Go's poller; closing it
	// unregisters it (closeAll closes the descriptor).
	dup, err := syscall.Dup(l.epfd)
	if err != nil {
		return fmt.Errorf("dup: %w", err)
	}
	f := os.NewFile(uintptr(dup), "epoll")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		for ctx.Err() == nil {
			n, errno := epollWaitRaw(int(fd), l.events[:], 0)
			switch {
			case errno == syscall.EINTR:
				continue
			case errno != 0:
				werr = fmt.Errorf("epoll_wait: %w", errno)
				return true
			case n == 0:
				return false
			}
			l.dispatch(n)
			if n < len(l.events) {
				return false
			}
		}
		return true // ctx ended (serveErelay writes to the wake-up pipe)
	})
	if ctx.Err() != nil {
		return nil
	}
	if werr != nil {
		return werr
	}
	return err
}

// dispatch handles the first n of l.events.
func (l *eloop) dispatch(n int) {
	for i := range n {
		ev := &l.events[i]
		if ev.Fd == wakeID {
			l.register()
			continue
		}
		s := l.sides[ev.Fd]
		if s == nil {
			continue // closed by an earlier event of this batch
		}
		if ev.Events&syscall.EPOLLOUT != 0 && len(s.out) > 0 {
			if !l.flush(s) {
				continue
			}
			if len(s.out) == 0 && s.peer.stalled {
				s.peer.stalled = false
				l.readSide(s.peer)
			}
		}
		if l.sides[ev.Fd] != nil && ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
			l.readSide(s)
		}
	}
}

// epollWaitRaw waits without telling the runtime (RawSyscall): the P
// stays with this goroutine, as a thread of nginx stays in its loop.
// Preemption signals interrupt it (EINTR).
func epollWaitRaw(epfd int, events []syscall.EpollEvent, timeoutMS int) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(timeoutMS), 0, 0)
	return int(r), e
}

// register adds the pairs handed over by setup goroutines and reads what
// may already be there (bytes buffered by the handshake have no event).
func (l *eloop) register() {
	for {
		if _, err := syscall.Read(l.wakeR, l.wakeDrain[:]); err != nil {
			break
		}
	}
	l.mu.Lock()
	pairs := l.incoming
	l.incoming = nil
	l.mu.Unlock()
	for _, p := range pairs {
		ok := true
		for _, s := range p {
			if len(l.free) > 0 {
				s.id = l.free[len(l.free)-1]
				l.free = l.free[:len(l.free)-1]
			} else {
				s.id = int32(len(l.sides))
				l.sides = append(l.sides, nil)
			}
			l.sides[s.id] = s
			ev := syscall.EpollEvent{Events: sideEvents, Fd: s.id}
			if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
				ok = false
			}
		}
		if !ok {
			l.closePair(p[0])
			continue
		}
		for _, s := range p {
			if l.sides[s.id] != s {
				continue // closed while its peer was read
			}
			// Records the handshake read along with its end first.
			if s.tls == nil || l.decrypt(s) {
				l.readSide(s)
			}
		}
	}
}

// readSide moves everything readable on s to its peer, until the socket
// has nothing more (a short read or EAGAIN: edge-triggered readiness
// reports the next arrival) or the peer's output backs up.
func (l *eloop) readSide(s *eside) {
	for {
		if len(s.peer.out) > 0 {
			s.stalled = true // resumed when the peer's out drains
			return
		}
		n, errno := sockio.RawRead(uintptr(s.fd), l.buf)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return
		case errno != 0 || n == 0:
			l.closePair(s)
			return
		}
		if s.tls != nil {
			s.mem.in = append(s.mem.in, l.buf[:n]...)
			if !l.decrypt(s) {
				return
			}
		} else if !l.send(s.peer, l.buf[:n]) {
			return
		}
		if n < len(l.buf) {
			return
		}
	}
}

// decrypt passes every whole record in s's input to the peer; false when
// the pair was closed.
func (l *eloop) decrypt(s *eside) bool {
	for {
		n, err := s.tls.Read(l.plain)
		if n > 0 && !l.send(s.peer, l.plain[:n]) {
			return false
		}
		if err != nil {
			if errors.Is(err, errWouldBlock) {
				return true
			}
			l.closePair(s)
			return false
		}
	}
}

// send writes p to s (through TLS when s has it); false when the pair was
// closed.
func (l *eloop) send(s *eside, p []byte) bool {
	if s.tls != nil {
		if _, err := s.tls.Write(p); err != nil { // into s.out
			l.closePair(s)
			return false
		}
		return l.flush(s)
	}
	if len(s.out) == 0 {
		n, errno := sockio.RawWrite(uintptr(s.fd), p)
		if errno == 0 && n == len(p) {
			return true
		}
		if errno != 0 && errno != syscall.EAGAIN && errno != syscall.EINTR {
			l.closePair(s)
			return false
		}
		if n > 0 {
			p = p[n:]
		}
	}
	s.out = append(s.out, p...)
	return l.flush(s)
}

// flush writes s.out until it is empty or the socket is full; false when
// the pair was closed.
func (l *eloop) flush(s *eside) bool {
	for len(s.out) > 0 {
		n, errno := sockio.RawWrite(uintptr(s.fd), s.out)
		switch {
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			return true // EPOLLOUT resumes
		case errno != 0:
			l.closePair(s)
			return false
		}
		s.out = s.out[:copy(s.out, s.out[n:])]
	}
	return true
}

// closePair closes both sockets of s's pair.
func (l *eloop) closePair(s *eside) {
	for _, x := range []*eside{s, s.peer} {
		if x.fd >= 0 {
			syscall.Close(x.fd) // also leaves the epoll
			x.fd = -1
			if int(x.id) < len(l.sides) && l.sides[x.id] == x {
				l.sides[x.id] = nil
				l.free = append(l.free, x.id)
			}
		}
	}
}

// memConn is the connection under a loop-owned tls.Conn: during the
// handshake it is the TCP connection (Conn set); afterwards reads take the
// bytes the loop appended to in and report errWouldBlock when there are
// none (a temporary net.Error: crypto/tls keeps a partial record and the
// connection usable), and writes append to the side's out.
type memConn struct {
	net.Conn
	side *eside
	in   []byte
	off  int
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.Conn != nil {
		return m.Conn.Read(p)
	}
	if m.off == len(m.in) {
		return 0, errWouldBlock
	}
	n := copy(p, m.in[m.off:])
	m.off += n
	if m.off == len(m.in) {
		m.in, m.off = m.in[:0], 0
	}
	return n, nil
}

func (m *memConn) Write(p []byte) (int, error) {
	if m.Conn != nil {
		return m.Conn.Write(p)
	}
	m.side.out = append(m.side.out, p...)
	return len(p), nil
}

func (m *memConn) Close() error { return nil }

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

var errWouldBlock net.Error = wouldBlock{}
