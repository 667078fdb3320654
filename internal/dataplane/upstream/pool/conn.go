package pool

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// client is the protocol side of a pooled connection: our h1Conn for
// HTTP/1.1, net/http's ClientConn (h2Conn) for HTTP/2.
type client interface {
	// Reserve claims capacity for one request, or fails when there is
	// none (or the connection just closed).
	Reserve() error
	// RoundTrip sends a reserved request; ctx aborts it until the
	// response body ends.
	RoundTrip(ctx context.Context, req *http.Request) (*http.Response, error)
	// Available is the capacity left for requests.
	Available() int
	// Err is why the connection is unusable, nil while it is usable.
	Err() error
	Close() error
	// SetStateHook sets the function called when Available grows or
	// Err becomes non-nil.
	SetStateHook(func())
}

// h2Conn is net/http's HTTP/2 ClientConn as a client.
type h2Conn struct{ cc *http.ClientConn }

func (h h2Conn) Reserve() error        { return h.cc.Reserve() }
func (h h2Conn) Available() int        { return h.cc.Available() }
func (h h2Conn) Err() error            { return h.cc.Err() }
func (h h2Conn) Close() error          { return h.cc.Close() }
func (h h2Conn) SetStateHook(f func()) { h.cc.SetStateHook(func(*http.ClientConn) { f() }) }

// RoundTrip runs req on ctx, which net/http takes from the request.
func (h h2Conn) RoundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	if req.Context() != ctx {
		req = req.WithContext(ctx)
	}
	return h.cc.RoundTrip(withoutDefaultUserAgent(req))
}

// withoutDefaultUserAgent returns req, or when it has no User-Agent a
// shallow copy whose header carries an empty one, which net/http takes
// as "send none" (a proxy must not invent one).
func withoutDefaultUserAgent(req *http.Request) *http.Request {
	if _, ok := req.Header["User-Agent"]; ok {
		return req
	}
	r := *req
	h := make(http.Header, len(req.Header)+1)
	for k, v := range req.Header {
		h[k] = v
	}
	h["User-Agent"] = []string{""}
	r.Header = h
	return &r
}

// conn is one pooled connection: a client over our netConn. Its fields
// below cc are guarded by the pool's mu.
//
//	dial ──► ready ──take──► busy ──done (body EOF/close, error)──► ready (idle timer)
//	           │                                                     │
//	           └── draining (max requests, max duration, pool drain) ─┴─► closed when idle
//	state hook: the client reports availability (the HTTP/1.1 response
//	was read to its end, an HTTP/2 stream ended) and closure;
//	netConn.Close releases limits.
type conn struct {
	p  *Pool
	cc client
	nc *netConn

	// inflight requests taken (by the pool's count, from take to done).
	inflight int
	// available is the connection's free capacity as the client last
	// reported it, minus what was taken since.
	available int
	requests  uint32
	// draining: no new requests; closed once inflight is 0.
	draining bool
	// dead: the client says the connection is unusable (or it closed);
	// it left p.conns.
	dead      bool
	idleSince time.Time
	// idleTimer is armed lazily: once set, it stays set while the
	// connection goes busy and idle again (idleSince moves), and onIdle
	// re-arms it for the rest of the timeout when it finds the
	// connection busy or idle for less than it. idleArmed: it is set.
	idleTimer *time.Timer
	idleArmed bool
	lifeTimer *time.Timer
}

func newConn(p *Pool, cc client, nc *netConn) *conn {
	c := &conn{p: p, cc: cc, nc: nc, available: cc.Available()}
	nc.c.Store(c)
	return c
}

// start installs the state hook and the max_connection_duration timer,
// once the connection is in the pool.
func (c *conn) start() {
	c.cc.SetStateHook(c.onState)
	if d := c.p.cfg.MaxConnectionDuration; d > 0 {
		c.p.mu.Lock()
		if !c.dead {
			c.lifeTimer = time.AfterFunc(d, c.onExpired)
		}
		c.p.mu.Unlock()
	}
}

// readyLocked reports whether the connection can take a request.
func (c *conn) readyLocked() bool {
	if c.dead || c.draining || c.available <= 0 {
		return false
	}
	if c.p.cfg.Protocol == HTTP1 {
		return c.inflight == 0
	}
	max := c.p.cfg.MaxConcurrentStreams
	return max == 0 || c.inflight < int(max)
}

// returningLocked reports an HTTP/1.1 connection whose request is done
// for the pool but whose client has not reported it available yet: it
// will be ready in a moment, or close. (Our HTTP/1.1 client reports the
// end of a response before the pool's done, so this is a brief window.)
func (c *conn) returningLocked() bool {
	return !c.dead && !c.draining && c.inflight == 0 && c.available <= 0
}

// takeLocked counts a request on the connection and reports whether the
// connection had carried requests before.
func (c *conn) takeLocked() (reused bool) {
	reused = c.requests > 0
	c.inflight++
	c.available--
	c.requests++
	if max := c.p.cfg.MaxRequestsPerConnection; max > 0 && c.requests >= max && !c.draining {
		c.draining = true
		c.p.stats.cxMaxRequests.Add(1)
	}
	return reused
}

// untakeLocked undoes takeLocked after the client refused the reservation;
// the connection counts as full until the state hook says otherwise.
func (c *conn) untakeLocked() {
	c.inflight--
	c.requests--
	c.available = 0
	c.idleLocked()
}

// idleLocked starts the idle timer of a connection without requests.
func (c *conn) idleLocked() {
	d := c.p.cfg.IdleTimeout
	if c.inflight > 0 || d <= 0 || c.dead {
		return
	}
	c.idleSince = time.Now()
	if c.idleArmed {
		return // fires at or before idleSince+d and re-arms (onIdle)
	}
	c.idleArmed = true
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(d, c.onIdle)
	} else {
		c.idleTimer.Reset(d)
	}
}

// done ends a request on c: the response was read (or abandoned) or the
// request failed. A draining connection closes with its last request.
func (p *Pool) done(c *conn) {
	p.mu.Lock()
	c.inflight--
	closeNow := c.inflight == 0 && !c.dead && (c.draining || p.draining)
	if !closeNow {
		c.idleLocked()
		// A stream slot is free, or the HTTP/1.1 connection is back if
		// the client's state hook came first; if it comes later, it wakes.
		if c.readyLocked() {
			p.wakeLocked(1)
		}
	}
	p.mu.Unlock()
	if closeNow {
		_ = c.cc.Close()
	}
}

// onState is the client's state hook: capacity changed or the
// connection became unusable.
func (c *conn) onState() {
	avail, err := c.cc.Available(), c.cc.Err()
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.removeLocked(c)
		return
	}
	if c.dead {
		return
	}
	grew := avail > c.available
	c.available = avail
	if grew {
		p.wakeLocked(avail)
	}
}

// removeLocked takes a dead connection out of the pool.
func (p *Pool) removeLocked(c *conn) {
	if c.dead {
		return
	}
	c.dead = true
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	if c.lifeTimer != nil {
		c.lifeTimer.Stop()
	}
	p.wakeLocked(1) // a connection slot is free
}

// onIdle closes a connection idle for IdleTimeout; one that has been
// busy since the timer was set, and is idle again, gets the timer back
// for the rest of its timeout.
func (c *conn) onIdle() {
	p := c.p
	p.mu.Lock()
	c.idleArmed = false
	fire := false
	if !c.dead && c.inflight == 0 {
		d, idleFor := p.cfg.IdleTimeout, time.Since(c.idleSince)
		if fire = idleFor >= d; fire {
			c.draining = true
			p.stats.cxIdleTimeout.Add(1)
		} else {
			c.idleArmed = true
			c.idleTimer.Reset(d - idleFor)
		}
	}
	p.mu.Unlock()
	if fire {
		p.log.Debug("upstream connection idle timeout", "host", p.cfg.Host.Key())
		_ = c.cc.Close()
	}
}

// onExpired drains a connection at max_connection_duration.
func (c *conn) onExpired() {
	p := c.p
	p.mu.Lock()
	if c.dead {
		p.mu.Unlock()
		return
	}
	c.draining = true
	p.stats.cxMaxDuration.Add(1)
	closeNow := c.inflight == 0
	p.mu.Unlock()
	if closeNow {
		_ = c.cc.Close()
	}
}

// netConn is a dialled connection as the client sees it. Its first Close
// releases the connection's limits and takes it out of the pool, whoever
// closes it: the client on errors or Connection: close, the pool (idle
// timeout, limits, drain), or the caller owning an upgraded (101)
// connection.
type netConn struct {
	net.Conn
	// peer is the host's verified identity (Dial's *PeerConn).
	peer   string
	p      *Pool
	hold   hold
	c      atomic.Pointer[conn]
	closed atomic.Bool
}

// newNetConn wraps what Dial returned, unwrapping a *PeerConn.
func newNetConn(raw net.Conn, p *Pool, h hold) *netConn {
	n := &netConn{Conn: raw, p: p, hold: h}
	if pc, ok := raw.(*PeerConn); ok {
		n.Conn, n.peer = pc.Conn, pc.Peer
	}
	return n
}

func (n *netConn) Close() error {
	err := n.Conn.Close()
	if n.closed.CompareAndSwap(false, true) {
		p := n.p
		if c := n.c.Load(); c != nil {
			p.mu.Lock()
			p.removeLocked(c)
			p.mu.Unlock()
		}
		p.releaseHold(n.hold)
	}
	return err
}

// CloseWrite half-closes the connection (upgraded connections relay
// half-closes).
func (n *netConn) CloseWrite() error {
	if cw, ok := n.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
