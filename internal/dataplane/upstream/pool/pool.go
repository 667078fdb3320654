package pool

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// Protocol is the HTTP protocol a pool speaks to its host.
type Protocol uint8

const (
	// HTTP1 is HTTP/1.1 with keep-alive: one request at a time per
	// connection.
	HTTP1 Protocol = iota
	// HTTP2 is HTTP/2 with prior knowledge (h2c): many streams per
	// connection.
	HTTP2
	// NumProtocols sizes arrays indexed by Protocol.
	NumProtocols
)

func (p Protocol) String() string {
	if p == HTTP2 {
		return "HTTP/2"
	}
	return "HTTP/1.1"
}

// defaultStreamGuess is how many streams a connecting HTTP/2 connection is
// expected to carry when the cluster sets no max_concurrent_streams (the
// peer's SETTINGS are not known yet; 100 is the RFC's recommended minimum).
const defaultStreamGuess = 100

// Config configures a Pool. Host, Breakers and Dial are required.
type Config struct {
	// Host is the upstream host: its counters (requests, connections) are
	// kept by the pool and its outlier monitor receives the results.
	Host *host.Host
	// Breakers are the cluster's circuit breakers of the routing
	// priority: connections, pending requests, requests and retries.
	Breakers *circuit.Breakers
	// PerHostMaxConnections is per_host_thresholds.max_connections
	// (0 or circuit.Unlimited: no limit).
	PerHostMaxConnections uint64
	// Protocol is HTTP1 or HTTP2.
	Protocol Protocol
	// Dial opens a connection to the host, transport socket included. It
	// must honour ctx; the pool applies ConnectTimeout through it. A
	// connection whose host identity was verified comes as a *PeerConn.
	// An error
	// wrapping ErrUnsupportedTransport is not held against the host.
	Dial func(ctx context.Context) (net.Conn, error)
	// ConnectTimeout bounds Dial (0: only the request's context does).
	ConnectTimeout time.Duration
	// IdleTimeout closes connections without requests for this long
	// (0: never).
	IdleTimeout time.Duration
	// MaxConnectionDuration drains connections this old: no new requests,
	// closed once the last one is done (0: never).
	MaxConnectionDuration time.Duration
	// MaxRequestsPerConnection drains a connection once it has taken this
	// many requests (0: unlimited).
	MaxRequestsPerConnection uint32
	// MaxConcurrentStreams caps the streams of one HTTP/2 connection,
	// below the peer's own SETTINGS_MAX_CONCURRENT_STREAMS (0: the peer's).
	MaxConcurrentStreams uint32
	// HTTP2 tunes HTTP/2 connections (window sizes, keepalive pings);
	// nil for net/http's defaults.
	HTTP2 *http.HTTP2Config
	// Logger receives connection events at debug level (default: discard).
	Logger *slog.Logger
}

// Info describes where an attempt went.
type Info struct {
	// Host is the pool's host.
	Host *host.Host
	// Reused reports that the request went on a connection that had
	// carried requests before.
	Reused bool
	// Protocol is the protocol spoken.
	Protocol Protocol
	// PeerIdentity is the host's identity verified by the connection's
	// transport socket (Dial returned a *PeerConn), "" for none or when
	// no connection was taken.
	PeerIdentity string
}

// PeerConn is what Dial returns for a connection whose transport socket
// verified the host's identity: Peer is that identity (the SPIFFE ID of
// the server certificate). The pool uses Conn and reports Peer in the
// Info of the requests the connection carries.
type PeerConn struct {
	net.Conn
	Peer string
}

// Pool is the connection pool of one host, protocol and routing priority.
// It is safe for concurrent use.
//
// Locking: mu guards the connection list, waiters and every conn's
// bookkeeping. No client method and no net.Conn Close is ever called with
// mu held: clients call back into the pool (state hooks, net.Conn.Close)
// with their own locks held, so mu always comes last.
type Pool struct {
	cfg  Config
	tr   *http.Transport // HTTP/2 only
	addr string
	log  *slog.Logger
	// bufs are the HTTP/1.1 request body copy buffers (*[]byte).
	bufs sync.Pool
	// resps are released HTTP/1.1 responses (*h1Response, body.Release).
	resps sync.Pool

	mu         sync.Mutex
	conns      []*conn // usable or busy; not dead
	connecting int
	waiters    []*waiter
	draining   bool
	closed     bool

	stats counters
}

// counters are the pool's lifetime counters.
type counters struct {
	cxTotal        atomic.Uint64
	cxConnectFail  atomic.Uint64
	cxIdleTimeout  atomic.Uint64
	cxMaxRequests  atomic.Uint64
	cxMaxDuration  atomic.Uint64
	rqTotal        atomic.Uint64
	rqPendingTotal atomic.Uint64
	rqOverflow     atomic.Uint64
}

// New returns an empty pool; connections are opened by requests.
func New(cfg Config) (*Pool, error) {
	switch {
	case cfg.Host == nil:
		return nil, errors.New("pool: Host is required")
	case cfg.Breakers == nil:
		return nil, errors.New("pool: Breakers are required")
	case cfg.Dial == nil:
		return nil, errors.New("pool: Dial is required")
	case cfg.Protocol >= NumProtocols:
		return nil, errors.New("pool: unknown protocol")
	}
	if cfg.PerHostMaxConnections == 0 {
		cfg.PerHostMaxConnections = circuit.Unlimited
	}
	p := &Pool{cfg: cfg, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	// net/http needs a host:port; the connection is ours anyway.
	p.addr = "upstream:80"
	if ap, ok := cfg.Host.Address().AddrPort(); ok {
		p.addr = ap.String()
	}
	p.bufs.New = func() any { b := make([]byte, bodyBufferSize); return &b }
	if cfg.Protocol == HTTP2 {
		// The Transport is only a connection factory (NewClientConn): its
		// own cache, proxy and idle handling are never used. A TLS
		// transport socket would set DialTLSContext and use the "https"
		// scheme so that ALPN picks the protocol.
		protocols := new(http.Protocols)
		protocols.SetUnencryptedHTTP2(true)
		p.tr = &http.Transport{
			DialContext:        p.dialContext,
			DisableCompression: true, // a proxy forwards Accept-Encoding as it is
			Protocols:          protocols,
			HTTP2:              cfg.HTTP2,
		}
	}
	return p, nil
}

// Protocol returns the pool's protocol.
func (p *Pool) Protocol() Protocol { return p.cfg.Protocol }

// Host returns the pool's host.
func (p *Pool) Host() *host.Host { return p.cfg.Host }

// RoundTrip sends req on a pooled connection and returns the response
// headers; the body streams from resp.Body, which the caller must close
// (reading it to EOF or closing it ends the request). retry says the
// attempt is a retry: it takes the retry circuit breaker for its duration.
// ctx is the attempt's context: its end aborts the request, response body
// included (req's own context is only used by HTTP/2, which gets ctx).
//
// The request counts against max_requests from the start and against
// max_pending_requests while it waits for a connection; results go to the
// host's outlier detection (the status code, or a local-origin event). A
// request without a User-Agent is sent without one; req is never
// modified (HTTP/2 shallow-copies it to stop net/http adding its own).
func (p *Pool) RoundTrip(ctx context.Context, req *http.Request, retry bool) (*http.Response, Info, error) {
	info := Info{Host: p.cfg.Host, Protocol: p.cfg.Protocol}
	br := p.cfg.Breakers
	if retry {
		if err := br.TryAcquire(circuit.Retries); err != nil {
			return nil, info, p.fail(RetryOverflow, err)
		}
	}
	if err := br.TryAcquire(circuit.Requests); err != nil {
		p.stats.rqOverflow.Add(1)
		if retry {
			br.Release(circuit.Retries)
		}
		return nil, info, p.fail(Overflow, err)
	}
	st := &p.cfg.Host.Stats
	st.RqTotal.Add(1)
	st.RqActive.Add(1)
	p.stats.rqTotal.Add(1)

	c, reused, err := p.acquire(ctx)
	if err != nil {
		p.endRequest(retry)
		return nil, info, err
	}
	info.Reused = reused
	info.PeerIdentity = c.nc.peer
	p.report(outlier.Result{Event: outlier.LocalOriginConnectSuccess})

	resp, err := c.cc.RoundTrip(ctx, req)
	if err != nil {
		kind := p.classify(ctx, c, err)
		p.done(c)
		p.endRequest(retry)
		return nil, info, p.fail(kind, err)
	}
	p.report(outlier.Result{Status: resp.StatusCode})
	if resp.Body == nil || resp.Body == http.NoBody {
		p.done(c)
		p.endRequest(retry)
		return resp, info, nil
	}
	if rw, ok := resp.Body.(readWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		u := &upgradeBody{rw: rw}
		u.body = body{rc: rw, p: p, c: c, ctx: ctx, retry: retry}
		resp.Body = u
	} else if hb, ok := resp.Body.(*h1Body); ok && hb.outer != nil {
		// Our HTTP/1.1 client's body has room for the wrapper.
		w := &hb.outer.wrap
		*w = body{rc: hb, p: p, c: c, ctx: ctx, retry: retry, h1: hb.outer}
		resp.Body = w
	} else {
		resp.Body = &body{rc: resp.Body, p: p, c: c, ctx: ctx, retry: retry}
	}
	return resp, info, nil
}

// classify maps a RoundTrip or body read error.
func (p *Pool) classify(ctx context.Context, c *conn, err error) Kind {
	switch {
	case ctx.Err() != nil:
		kind := contextKind(ctx)
		if kind == Timeout {
			p.report(outlier.Result{Event: outlier.LocalOriginTimeout, Status: http.StatusGatewayTimeout})
		}
		return kind
	case errors.Is(err, ErrInvalidRequest):
		return Reset // not the host's doing
	case errors.Is(err, ErrMalformedResponse):
		p.report(outlier.Result{Event: outlier.LocalOriginConnectFailed})
		return Reset
	case refused(err):
		p.report(outlier.Result{Event: outlier.LocalOriginConnectFailed})
		return RefusedStream
	case c.cc.Err() != nil:
		p.report(outlier.Result{Event: outlier.LocalOriginConnectFailed})
		return ConnectionTermination
	}
	p.report(outlier.Result{Event: outlier.LocalOriginConnectFailed})
	return Reset
}

func (p *Pool) fail(kind Kind, err error) error {
	return &Error{Kind: kind, Host: p.cfg.Host.Key(), Err: err}
}

// endRequest releases what a request held from its start.
func (p *Pool) endRequest(retry bool) {
	p.cfg.Breakers.Release(circuit.Requests)
	if retry {
		p.cfg.Breakers.Release(circuit.Retries)
	}
	p.cfg.Host.Stats.RqActive.Add(-1)
}

func (p *Pool) report(r outlier.Result) {
	if m := p.cfg.Host.Outlier(); m != nil {
		m.Put(r)
	}
}

// Drain stops the pool gracefully: idle connections close now, busy ones
// when their last request is done. Requests still arriving are served
// (each on a connection closed after it). Used when the host or its
// cluster goes away.
func (p *Pool) Drain() {
	p.mu.Lock()
	p.draining = true
	var idle []*conn
	for _, c := range p.conns {
		if c.inflight == 0 {
			idle = append(idle, c)
		}
	}
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.cc.Close()
	}
}

// Close closes every connection now, interrupting requests in flight,
// and fails waiting requests. The pool refuses requests afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed, p.draining = true, true
	conns := append([]*conn(nil), p.conns...)
	waiters := p.waiters
	p.waiters = nil
	p.mu.Unlock()
	for _, w := range waiters {
		w.signal(ErrClosed)
	}
	for _, c := range conns {
		_ = c.cc.Close()
	}
}

// Stats is a snapshot of a pool, for the admin interface.
type Stats struct {
	Protocol Protocol
	// Connections are open (busy or idle); Connecting are being dialled.
	Connections int
	Connecting  int
	// Idle connections carry no request; Active requests are in flight on
	// a connection; Pending requests wait for one.
	Idle    int
	Active  int
	Pending int
	// Draining: the pool takes no new connections beyond the requests it
	// still serves (host or cluster removed).
	Draining bool
	// Lifetime counters (Envoy's upstream_cx_* and upstream_rq_*).
	ConnectionsTotal   uint64
	ConnectFailures    uint64
	IdleTimeouts       uint64
	MaxRequestsReached uint64
	MaxDurationReached uint64
	RequestsTotal      uint64
	PendingTotal       uint64
	// Overflows counts requests refused by max_requests or
	// max_pending_requests (upstream_rq_pending_overflow).
	Overflows uint64
}

// Stats returns a snapshot of the pool.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	s := Stats{
		Protocol:    p.cfg.Protocol,
		Connections: len(p.conns),
		Connecting:  p.connecting,
		Pending:     len(p.waiters),
		Draining:    p.draining,
	}
	for _, c := range p.conns {
		if c.inflight == 0 {
			s.Idle++
		}
		s.Active += c.inflight
	}
	p.mu.Unlock()
	s.ConnectionsTotal = p.stats.cxTotal.Load()
	s.ConnectFailures = p.stats.cxConnectFail.Load()
	s.IdleTimeouts = p.stats.cxIdleTimeout.Load()
	s.MaxRequestsReached = p.stats.cxMaxRequests.Load()
	s.MaxDurationReached = p.stats.cxMaxDuration.Load()
	s.RequestsTotal = p.stats.rqTotal.Load()
	s.PendingTotal = p.stats.rqPendingTotal.Load()
	s.Overflows = p.stats.rqOverflow.Load()
	return s
}

// Empty reports whether the pool has no connection, dial or waiting
// request left (a drained pool that can be forgotten).
func (p *Pool) Empty() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) == 0 && p.connecting == 0 && len(p.waiters) == 0
}
