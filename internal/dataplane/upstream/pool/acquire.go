package pool

import (
	"context"
	"errors"
	"net"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// waiter is a request waiting for a connection (a pending request).
type waiter struct {
	// ch receives nil to look again, or an error that fails the request
	// (the dial it waited for failed, or the pool closed). Buffered: a
	// signal never blocks the signaller.
	ch chan error
}

func (w *waiter) signal(err error) {
	select {
	case w.ch <- err:
	default: // already signalled
	}
}

// acquire returns a connection with a stream reserved for the caller,
// opening one if the limits allow, else waiting as a pending request:
//
//	ready connection? ──yes──► take it (reserve a stream)
//	     │no
//	pending breaker ──overflow──► UO
//	     │
//	may dial? (h2: no dial under way that will have room; h1: no
//	connection about to come back; max_connections or the pool's
//	first connection; per-host max_connections) ──yes──► dial, take it
//	     │no
//	wait (FIFO) for a connection event, then look again
//
// reused reports that the connection had served requests before.
func (p *Pool) acquire(ctx context.Context) (c *conn, reused bool, err error) {
	var w *waiter
	pending := false
	defer func() {
		if pending {
			p.cfg.Breakers.Release(circuit.PendingRequests)
			p.cfg.Host.Stats.RqPending.Add(-1)
		}
	}()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, p.fail(ConnectionTermination, ErrClosed)
		}
		if c := p.readyLocked(); c != nil {
			reused := c.takeLocked()
			p.mu.Unlock()
			if err := c.cc.Reserve(); err != nil {
				// The connection was not really free: the peer closed it
				// while idle (HTTP/1.1), the peer's stream limit or a
				// GOAWAY (HTTP/2), or it just closed. The state hook
				// will tell when it changes.
				p.mu.Lock()
				c.untakeLocked()
				p.mu.Unlock()
				continue
			}
			return c, reused, nil
		}
		if !pending {
			if err := p.cfg.Breakers.TryAcquire(circuit.PendingRequests); err != nil {
				p.mu.Unlock()
				p.stats.rqOverflow.Add(1)
				return nil, false, p.fail(Overflow, err)
			}
			pending = true
			p.cfg.Host.Stats.RqPending.Add(1)
			p.stats.rqPendingTotal.Add(1)
		}
		if p.mayDialLocked() {
			if h, ok := p.holdConnectionLocked(); ok {
				p.connecting++
				p.mu.Unlock()
				c, err := p.dial(ctx, h)
				if err != nil {
					return nil, false, err
				}
				if err := c.cc.Reserve(); err != nil {
					p.mu.Lock()
					c.untakeLocked()
					p.mu.Unlock()
					return nil, false, p.fail(ConnectionTermination, err)
				}
				return c, false, nil
			}
		}
		if w == nil {
			w = &waiter{ch: make(chan error, 1)}
		}
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()
		select {
		case err := <-w.ch:
			if err != nil {
				var pe *Error
				if errors.As(err, &pe) {
					return nil, false, err
				}
				return nil, false, p.fail(ConnectionTermination, err)
			}
		case <-ctx.Done():
			p.leave(w)
			return nil, false, p.fail(contextKind(ctx), context.Cause(ctx))
		}
	}
}

// leave removes a waiter whose request gave up. If it had been signalled
// in the meantime, the signal goes to the next waiter so no wake-up is
// lost.
func (p *Pool) leave(w *waiter) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return
		}
	}
	select {
	case err := <-w.ch:
		if err == nil {
			p.wakeLocked(1)
		}
	default:
	}
}

// wakeLocked tells up to n waiters, oldest first, to look again.
func (p *Pool) wakeLocked(n int) {
	for n > 0 && len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		w.signal(nil)
		n--
	}
}

// failWaitersLocked fails every waiting request with err.
func (p *Pool) failWaitersLocked(err error) {
	for _, w := range p.waiters {
		w.signal(err)
	}
	p.waiters = nil
}

// readyLocked returns a connection that can take a request now.
func (p *Pool) readyLocked() *conn {
	for i := len(p.conns) - 1; i >= 0; i-- { // most recently opened first
		if c := p.conns[i]; c.readyLocked() {
			return c
		}
	}
	return nil
}

// mayDialLocked says whether a request without a ready connection should
// open one rather than wait for one that is on its way: an HTTP/2
// connection being dialled that will have room for it, or an HTTP/1.1
// connection whose response was just read and that net/http is about to
// hand back.
func (p *Pool) mayDialLocked() bool {
	if p.cfg.Protocol == HTTP2 {
		guess := int(p.cfg.MaxConcurrentStreams)
		if guess == 0 {
			guess = defaultStreamGuess
		}
		return len(p.waiters) >= p.connecting*(guess-1)
	}
	returning := 0
	for _, c := range p.conns {
		if c.returningLocked() {
			returning++
		}
	}
	return returning <= len(p.waiters)
}

// hold is what a connection holds while open: a unit of the cluster's
// max_connections breaker unless it was the pool's forced first
// connection, and one of the host's connections (CxActive).
type hold struct {
	breaker bool
}

// holdConnectionLocked takes the limits for a new connection. Like
// Envoy, a pool without any connection may always open one, even over
// max_connections (the overflow is still counted), so that a cluster-wide
// limit smaller than the number of hosts cannot starve a host.
func (p *Pool) holdConnectionLocked() (hold, bool) {
	first := len(p.conns) == 0 && p.connecting == 0
	err := p.cfg.Breakers.TryAcquire(circuit.Connections)
	if err != nil && !first {
		return hold{}, false
	}
	limit := p.cfg.PerHostMaxConnections
	if first {
		limit = circuit.Unlimited
	}
	if !p.cfg.Host.AcquireConnection(limit) {
		if err == nil {
			p.cfg.Breakers.Release(circuit.Connections)
		}
		return hold{}, false
	}
	return hold{breaker: err == nil}, true
}

func (p *Pool) releaseHold(h hold) {
	if h.breaker {
		p.cfg.Breakers.Release(circuit.Connections)
	}
	p.cfg.Host.ReleaseConnection()
}

type dialKey struct{}

// dialState carries a dial's hold into DialContext and the connection
// back out.
type dialState struct {
	hold hold
	nc   *netConn
}

// dialContext is the HTTP/2 Transport's DialContext: the configured
// Dial, wrapped so that closing the connection releases its limits.
func (p *Pool) dialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	st, _ := ctx.Value(dialKey{}).(*dialState)
	if st == nil {
		return nil, errors.New("pool: dial outside NewClientConn")
	}
	raw, err := p.cfg.Dial(ctx)
	if err != nil {
		return nil, err
	}
	st.nc = newNetConn(raw, p, st.hold)
	return st.nc, nil
}

// connect dials the host and starts the protocol's client. On failure
// the hold is released.
func (p *Pool) connect(dctx context.Context, h hold) (client, *netConn, error) {
	if p.cfg.Protocol == HTTP1 {
		raw, err := p.cfg.Dial(dctx)
		if err != nil {
			p.releaseHold(h)
			return nil, nil, err
		}
		nc := newNetConn(raw, p, h)
		return newH1Conn(nc, nc.Conn, &p.bufs, &p.resps), nc, nil
	}
	st := &dialState{hold: h}
	cc, err := p.tr.NewClientConn(context.WithValue(dctx, dialKey{}, st), "http", p.addr)
	if err != nil {
		if st.nc == nil { // else closing the connection released it
			p.releaseHold(h)
		}
		return nil, nil, err
	}
	return h2Conn{cc}, st.nc, nil
}

// dial opens a connection for the calling request (p.connecting was
// counted) and returns it taken. On failure, waiters that counted on this
// connection are failed with the same error when no other connection is
// open or coming.
func (p *Pool) dial(ctx context.Context, h hold) (*conn, error) {
	dctx := ctx
	if d := p.cfg.ConnectTimeout; d > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeoutCause(ctx, d, errConnectTimeout)
		defer cancel()
	}
	p.stats.cxTotal.Add(1)
	cc, nc, err := p.connect(dctx, h)
	if err != nil {
		return nil, p.dialFailed(ctx, dctx, err)
	}
	c := newConn(p, cc, nc)
	p.mu.Lock()
	p.connecting--
	closed := p.closed
	p.conns = append(p.conns, c)
	c.takeLocked()
	if p.cfg.Protocol == HTTP2 {
		p.wakeLocked(c.available)
	}
	p.mu.Unlock()
	c.start()
	if closed {
		_ = cc.Close()
		return nil, p.fail(ConnectionTermination, ErrClosed)
	}
	return c, nil
}

// dialFailed accounts for a failed dial and returns the request's error.
func (p *Pool) dialFailed(ctx, dctx context.Context, err error) error {
	kind := ConnectFailure
	switch {
	case ctx.Err() != nil:
		kind = contextKind(ctx)
	case ConnectTimedOut(dctx, err):
		kind, err = ConnectTimeout, errConnectTimeout
	}
	if kind == ConnectFailure || kind == ConnectTimeout {
		p.stats.cxConnectFail.Add(1)
		p.cfg.Host.Stats.CxConnectFail.Add(1)
		if !errors.Is(err, ErrUnsupportedTransport) {
			p.report(outlier.Result{Event: outlier.LocalOriginConnectFailed})
		}
	}
	p.log.Debug("upstream connect failed", "host", p.cfg.Host.Key(), "kind", kind, "error", err)
	e := p.fail(kind, err)
	p.mu.Lock()
	p.connecting--
	if kind == ConnectFailure || kind == ConnectTimeout {
		if len(p.conns) == 0 && p.connecting == 0 {
			p.failWaitersLocked(e)
		} else {
			p.wakeLocked(1)
		}
	} else {
		p.wakeLocked(1) // someone else may dial
	}
	p.mu.Unlock()
	return e
}
