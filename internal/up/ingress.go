package up

import (
	"errors"
	"io"
	"net"
	"sync"
)

// frontDoor relays TCP connections from the ingress address to one
// workload's port: the same bytes, so HTTP keep-alive, streaming and
// WebSockets behave as if the client had dialled the workload itself.
// Without traffic capture there is no inbound sidecar hop to go through
// (see docs/local-mode.md), so it is a plain relay, not a mesh gateway.
type frontDoor struct {
	ln     net.Listener
	target string

	served chan struct{} // closed when serve returns

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the relays
}

func newFrontDoor(ln net.Listener, target string) *frontDoor {
	return &frontDoor{ln: ln, target: target, conns: map[net.Conn]struct{}{}, served: make(chan struct{})}
}

// serve accepts until close.
func (f *frontDoor) serve() {
	defer close(f.served)
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Go(func() { f.relay(c) })
	}
}

func (f *frontDoor) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *frontDoor) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

func (f *frontDoor) relay(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", f.target)
	if err != nil {
		f.untrack(c)
		return
	}
	defer u.Close()
	if !f.track(u) {
		return
	}
	defer f.untrack(c, u)
	done := make(chan struct{})
	go func() {
		io.Copy(u, c)
		if tc, ok := u.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		close(done)
	}()
	io.Copy(c, u)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	<-done
}

// close stops accepting, closes every relayed connection and waits for
// the relays to end.
func (f *frontDoor) close() {
	f.ln.Close()
	<-f.served
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}
