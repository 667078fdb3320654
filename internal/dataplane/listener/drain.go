package listener

import (
	"io"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// Drainer is implemented by the handlers of network filters that can ask
// their connections to go away while still serving them (Envoy's drain
// manager): the HTTP connection manager answers HTTP/1 requests with
// "Connection: close" and sends HTTP/2 connections a GOAWAY. Drain is
// called once per handler, from any goroutine, and must not block; new
// connections the handler serves afterwards are drained too.
//
// The manager calls Drain on every handler of a filter chain that
// implements it, wrappers included, when the chain's listener is replaced
// or removed by Update, and when Manager.Drain selects the listener.
type Drainer interface {
	Drain()
}

// Selector picks listeners, for Drain and StopListening. A nil Selector
// picks every listener.
type Selector func(*Listener) bool

// Inbound selects the listeners whose traffic_direction is INBOUND, as
// Envoy's /drain_listeners?inboundonly.
func Inbound(l *Listener) bool { return l.direction == corev3.TrafficDirection_INBOUND }

func (s Selector) picks(l *Listener) bool { return s == nil || s(l) }

// Drain starts draining the listeners sel picks without closing anything:
// their filter chains' Drainers are told to move clients away, and the
// listeners keep accepting and serving (Envoy's graceful drain period).
// Listeners that a later Update adds or changes are drained too if sel
// picks them. Closing sockets and connections is left to StopListening
// and Close.
func (m *Manager) Drain(sel Selector) {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	prev := m.drainSel
	m.drainSel = func(l *Listener) bool { return (prev != nil && prev(l)) || sel.picks(l) }
	m.mu.Unlock()
	for _, g := range m.state.Load().byName {
		if sel.picks(g.l) {
			g.drain()
		}
	}
}

// StopListening closes the sockets of the listeners sel picks (Envoy's
// /drain_listeners without graceful: stop accepting): connections already
// accepted go on until they end or Close. The listeners stay configured
// but are never bound again, whatever later Updates say, until the
// manager is closed.
func (m *Manager) StopListening(sel Selector) {
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	prev := m.stopSel
	m.stopSel = func(l *Listener) bool { return (prev != nil && prev(l)) || sel.picks(l) }
	m.mu.Unlock()
	for key, s := range m.sockets {
		if g := s.owner.Load(); g != nil && sel.picks(g.l) {
			s.stopped.Store(true)
			s.ln.Close()
			delete(m.sockets, key)
		}
	}
}

// ActiveConnections counts the open downstream connections of every
// listener, those of replaced or removed listeners still draining
// included: Envoy's listener.<name>.downstream_cx_active summed over the
// listeners, as Istio's agent polls it to exit on zero active
// connections. It costs a walk of the connection sets under the lock;
// nothing is counted per connection or request for it.
func (m *Manager) ActiveConnections() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for g := range m.gens {
		n += len(g.conns)
	}
	return n
}

// stoppedLocked reports whether StopListening has selected l. Called with
// updateMu held.
func (m *Manager) stoppedLocked(l *Listener) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopSel != nil && m.stopSel(l)
}

// drain tells every Drainer of g's chains to move its clients away, once.
func (g *generation) drain() {
	g.drainOnce.Do(func() {
		g.l.eachHandler(func(h ConnHandler) {
			if d, ok := h.(Drainer); ok {
				d.Drain()
			}
		})
	})
}

// release closes the handlers of a generation nobody uses any more (the
// HTTP connection manager's mirrors): retired and drained, or the manager
// closed.
func (g *generation) release() {
	g.releaseOnce.Do(func() {
		g.l.eachHandler(func(h ConnHandler) {
			if c, ok := h.(io.Closer); ok {
				_ = c.Close()
			}
		})
	})
}

// eachHandler calls f with every network filter handler of every chain,
// the default chain included.
func (l *Listener) eachHandler(f func(ConnHandler)) {
	for _, c := range l.chains {
		for _, h := range c.parts {
			f(h)
		}
	}
	if c := l.defaultChain; c != nil {
		for _, h := range c.parts {
			f(h)
		}
	}
}
