package tcp

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// errDuration is the cause of a session context that reached
// max_downstream_connection_duration.
var errDuration = errors.New("max_downstream_connection_duration reached")

// bufferSize is the copy buffer of each direction.
const bufferSize = 32 * 1024

// Serve proxies c to its cluster: connect (with retries), then relay both
// ways with half-close until both sides are done, a timeout fires or ctx
// ends. It implements listener.ConnHandler.
func (p *Proxy) Serve(ctx context.Context, c *listener.Conn) {
	s := &Session{StatPrefix: p.s.StatPrefix, Downstream: c, Start: time.Now()}
	s.Cluster = p.s.pick(p.cfg.Rand)
	if d := p.maxDuration(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, errDuration)
		defer cancel()
	}
	up, err := p.connect(ctx, s)
	if err != nil {
		p.cfg.Logger.Debug("tcp_proxy: no upstream connection", "stat_prefix", s.StatPrefix, "cluster", s.Cluster, "flags", s.ResponseFlags(), "error", err)
		c.Close()
		p.closed(s)
		return
	}
	s.Upstream = up.RemoteAddr()
	if pi, ok := up.(PeerIdentifier); ok {
		s.UpstreamPeerIdentity = pi.PeerIdentity()
	}
	p.cfg.Observer.Connected(s)
	p.relay(ctx, c, up, s)
	p.closed(s)
}

// closed reports the end of a session to the observer and access logs.
func (p *Proxy) closed(s *Session) {
	p.cfg.Observer.Closed(s)
	if p.log != nil {
		p.log(s)
	}
}

// maxDuration is MaxDuration plus its random jitter.
func (p *Proxy) maxDuration() time.Duration {
	d := p.s.MaxDuration
	if d <= 0 || p.s.MaxDurationJitter <= 0 {
		return d
	}
	span := uint64(float64(d) * p.s.MaxDurationJitter / 100)
	if span == 0 {
		return d
	}
	return d + time.Duration(p.cfg.Rand(span))
}

// connect dials the session's cluster up to MaxConnectAttempts times.
// "Nothing to try" errors end it at once, as in Envoy.
func (p *Proxy) connect(ctx context.Context, s *Session) (net.Conn, error) {
	dctx := ctx
	if p.s.HashSourceIP && s.Downstream.Source.IsValid() {
		dctx = withHashKey(ctx, sourceIPHash(s.Downstream.Source.Addr()))
	}
	for attempt := 0; ; attempt++ {
		s.ConnectAttempts++
		up, err := p.cfg.Upstream.Dial(dctx, s.Cluster, s.Downstream)
		if err == nil {
			return up, nil
		}
		switch {
		case errors.Is(err, ErrNoCluster):
			s.addFlag(FlagNoCluster)
			return nil, err
		case errors.Is(err, ErrNoHealthyUpstream):
			s.addFlag(FlagNoHealthyUpstream)
			return nil, err
		case errors.Is(err, ErrOverflow):
			s.addFlag(FlagOverflow)
			return nil, err
		case ctx.Err() != nil:
			if errors.Is(context.Cause(ctx), errDuration) {
				s.addFlag(FlagDurationTimeout)
			}
			return nil, err
		case s.ConnectAttempts >= p.s.MaxConnectAttempts:
			s.addFlag(FlagConnectFailure)
			if p.s.MaxConnectAttempts > 1 {
				s.addFlag(FlagRetryLimit)
			}
			return nil, err
		}
		if wait := p.backoff(attempt); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				if errors.Is(context.Cause(ctx), errDuration) {
					s.addFlag(FlagDurationTimeout)
				}
				return nil, ctx.Err()
			}
		}
	}
}

// backoff is the wait before retry number attempt+1: full jitter over an
// exponential ceiling, or nothing without backoff_options.
func (p *Proxy) backoff(attempt int) time.Duration {
	if p.s.BackoffBase <= 0 {
		return 0
	}
	ceiling := p.s.BackoffBase
	for i := 0; i < attempt && ceiling < p.s.BackoffMax; i++ {
		ceiling *= 2
	}
	ceiling = min(ceiling, p.s.BackoffMax)
	return time.Duration(p.cfg.Rand(uint64(ceiling)))
}

// relay copies both ways until both directions have ended. A read EOF is
// passed on as a half-close (CloseWrite) of the other side; an error on
// either side, the idle timeout, the duration limit or ctx closes both.
func (p *Proxy) relay(ctx context.Context, down *listener.Conn, up net.Conn, s *Session) {
	defer up.Close()
	defer down.Close()
	var activity atomic.Int64
	activity.Store(time.Now().UnixNano())
	results := make(chan error, 2)
	go p.pipe(up, down, s, ToUpstream, &activity, results)
	go p.pipe(down, up, s, ToDownstream, &activity, results)

	var idle <-chan time.Time
	var idleTimer *time.Timer
	if p.s.IdleTimeout > 0 {
		idleTimer = time.NewTimer(p.s.IdleTimeout)
		defer idleTimer.Stop()
		idle = idleTimer.C
	}
	done := ctx.Done()
	aborted := false
	abort := func(flag string) {
		if aborted {
			return
		}
		aborted = true
		if flag != "" {
			s.addFlag(flag)
		}
		down.Close()
		up.Close()
	}
	for pending := 2; pending > 0; {
		select {
		case err := <-results:
			pending--
			if err != nil {
				abort("")
			}
		case <-idle:
			// Bytes may have moved since the timer was set: wait for the
			// rest of the idle time after the last activity.
			if since := time.Since(time.Unix(0, activity.Load())); since < p.s.IdleTimeout {
				idleTimer.Reset(p.s.IdleTimeout - since)
				continue
			}
			idle = nil
			abort(FlagIdleTimeout)
		case <-done:
			done = nil
			if errors.Is(context.Cause(ctx), errDuration) {
				abort(FlagDurationTimeout)
			} else {
				abort("")
			}
		}
	}
}

// pipe copies src to dst. At src's EOF it half-closes dst and returns
// nil; any other error is returned.
func (p *Proxy) pipe(dst, src net.Conn, s *Session, d Direction, activity *atomic.Int64, results chan<- error) {
	results <- p.copy(dst, src, s, d, activity)
}

func (p *Proxy) copy(dst, src net.Conn, s *Session, d Direction, activity *atomic.Int64) error {
	counter := &s.received
	if d == ToDownstream {
		counter = &s.sent
	}
	buf := make([]byte, bufferSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			activity.Store(time.Now().UnixNano())
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			counter.Add(int64(n))
			p.cfg.Observer.Transferred(s, d, n)
		}
		if errors.Is(err, io.EOF) {
			closeWrite(dst)
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// closeWrite half-closes c when it can (TCP; TLS with close_notify and
// FIN; a listener.Conn over either); otherwise the other direction goes on
// until it ends.
func closeWrite(c net.Conn) { _ = listener.CloseWrite(c) }
