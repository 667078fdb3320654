package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/sockio"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
)

// accept is a socket's accept loop; it ends when the socket is closed.
func (m *Manager) accept(s *socket) {
	defer m.wg.Done()
	var delay time.Duration
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.log.Warn("accept failed", "address", s.ln.Addr().String(), "error", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-m.quit:
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		g := s.owner.Load()
		if !s.acquire(m.maxConns) {
			m.metrics.Overflow(g.l.name)
			raw.Close()
			continue
		}
		m.wg.Add(1)
		go m.serve(s, g, raw)
	}
}

// acquire counts a connection against the limit (0: none), or refuses it.
func (s *socket) acquire(limit int64) bool {
	if n := s.active.Add(1); limit > 0 && n > limit {
		s.active.Add(-1)
		return false
	}
	return true
}

func (s *socket) release() { s.active.Add(-1) }

// serve runs one accepted connection: listener filters, hand-off, chain
// match, handler. The connection is closed when it returns.
func (m *Manager) serve(s *socket, g *generation, raw net.Conn) {
	defer m.wg.Done()
	defer s.release()
	ctx, t := m.track(s, g, raw)
	if t == nil {
		raw.Close()
		return
	}
	defer m.untrack(t)
	defer raw.Close()
	defer t.cancel()

	cs := newConnState(raw, time.Now(), m.hsTime, s.opts.Transparent)
	g, ok := m.inspect(t, cs)
	if !ok {
		return
	}
	in := MatchInput{
		Destination: cs.dest,
		Source:      cs.source,
		SNI:         cs.sni,
		Transport:   cs.transport,
		ALPN:        cs.alpn,
	}
	chain := g.l.Match(in)
	if chain == nil {
		m.metrics.NoFilterChain(g.l.name)
		m.log.Debug("no filter chain matched", "listener", g.l.name, "source", cs.source, "destination", cs.dest, "sni", cs.sni, "transport", cs.transport, "alpn", cs.alpn)
		return
	}
	if chain.handler == nil {
		return // Envoy closes connections of chains without filters
	}
	if err := cs.clearDeadline(); err != nil {
		return
	}
	conn := newReplayConn(sockio.Wrap(raw), cs.buf)
	var st *tls.ConnectionState
	if chain.tls != nil {
		tc, state := m.handshake(ctx, g, chain, cs)
		if tc == nil {
			return
		}
		conn, st = tc, state
	}
	c := &Conn{
		Conn:         conn,
		Listener:     g.l.name,
		Chain:        chain.name,
		DefaultChain: chain.IsDefault(),
		Source:       cs.source,
		Local:        cs.local,
		Destination:  cs.dest,
		Restored:     cs.restored,
		SNI:          cs.sni,
		ALPN:         cs.alpn,
		Transport:    cs.transport,
		Accepted:     cs.accepted,
		TLS:          st,
	}
	if st != nil && len(st.PeerCertificates) > 0 {
		// A presented client certificate has been verified by the
		// chain's validation context (the handshake fails otherwise).
		c.MutualTLS = chain.tls.Verifies()
		if c.MutualTLS {
			c.PeerIdentity = tlssock.PeerIdentity(st)
		}
	}
	chain.handler.Serve(ctx, c)
}

// inspect runs the listener filters of t's generation and, for
// use_original_dst listeners, hands the connection to the listener of its
// original destination, whose filters then run (without further
// hand-off). It returns the generation whose chains serve the connection.
func (m *Manager) inspect(t *tracked, cs *connState) (*generation, bool) {
	g := m.generationOf(t)
	if err := g.l.runFilters(cs, m.origDst, time.Now()); err != nil {
		m.filterClosed(g, cs, err)
		return nil, false
	}
	if g.l.useOriginalDst && cs.restored {
		if target := m.state.Load().handoffTarget(cs.dest); target != nil && target != g {
			if !m.retrack(t, target) {
				return nil, false
			}
			g = target
			if err := g.l.runFilters(cs, m.origDst, time.Now()); err != nil {
				m.filterClosed(g, cs, err)
				return nil, false
			}
		}
	}
	if cs.transport == "" {
		cs.transport = TransportRawBuffer
	}
	return g, true
}

func (m *Manager) filterClosed(g *generation, cs *connState, err error) {
	reason := filterCloseReason(err)
	m.metrics.FilterClosed(g.l.name, reason)
	m.log.Debug("listener filters closed the connection", "listener", g.l.name, "source", cs.source, "reason", reason, "error", err)
}

// track registers a connection with its generation so that drains and
// Close can end it. A generation retired since the accept is replaced by
// the socket's current one. It returns nil once the manager is closed.
func (m *Manager) track(s *socket, g *generation, raw net.Conn) (context.Context, *tracked) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil
	}
	if g.retired && s != nil {
		if cur := s.owner.Load(); cur != nil {
			g = cur
		}
	}
	if g.retired || g.killed {
		return nil, nil // accepted just as its listener was removed
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &tracked{raw: raw, cancel: cancel, gen: g}
	g.conns[t] = struct{}{}
	m.gens[g] = struct{}{}
	return ctx, t
}

func (m *Manager) generationOf(t *tracked) *generation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return t.gen
}

// retrack moves t to the generation it was handed off to.
func (m *Manager) retrack(t *tracked, to *generation) bool {
	m.mu.Lock()
	if m.closed || to.killed {
		m.mu.Unlock()
		return false
	}
	done := m.removeLocked(t)
	t.gen = to
	to.conns[t] = struct{}{}
	m.gens[to] = struct{}{}
	m.mu.Unlock()
	if done != nil {
		done.release()
	}
	return true
}

func (m *Manager) untrack(t *tracked) {
	m.mu.Lock()
	done := m.removeLocked(t)
	m.mu.Unlock()
	if done != nil {
		done.release()
	}
}

// removeLocked forgets t; it returns t's generation if that was retired
// and t its last connection, for the caller to release once unlocked.
func (m *Manager) removeLocked(t *tracked) *generation {
	g := t.gen
	delete(g.conns, t)
	if g.retired && len(g.conns) == 0 {
		g.markDrainedLocked()
		delete(m.gens, g)
		return g
	}
	return nil
}

// kill ends a connection: its handler's context is cancelled and the
// socket closed, which unblocks any read or write on it.
func (t *tracked) kill() {
	t.cancel()
	t.raw.Close()
}
