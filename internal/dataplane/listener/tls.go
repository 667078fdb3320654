package listener

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/sockio"
	"github.com/trellismesh/trellis/internal/dataplane/tlssock"
)

// terminatesTLS reports whether a filter chain of l has a tls transport
// socket.
func (l *Listener) terminatesTLS() bool {
	if l.defaultChain != nil && l.defaultChain.tls != nil {
		return true
	}
	for _, c := range l.chains {
		if c.tls != nil {
			return true
		}
	}
	return false
}

// handshake terminates TLS for chain on the accepting goroutine, within
// what is left of the handshake timeout (SECURITY C6: inspection and
// handshake share Config.HandshakeTimeout from the accept). The buffered
// ClientHello is replayed into the handshake. On failure the reason is
// counted and nil returned; the caller closes the connection.
func (m *Manager) handshake(ctx context.Context, g *generation, chain *Chain, cs *connState) (*tls.Conn, *tls.ConnectionState) {
	if !cs.hardDeadline.IsZero() {
		if err := cs.raw.SetDeadline(cs.hardDeadline); err != nil {
			return nil, nil
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, cs.hardDeadline)
		defer cancel()
	}
	conn, err := chain.tls.Handshake(ctx, newReplayConn(sockio.Wrap(cs.raw), cs.buf), m.cfg.Secrets)
	cs.buf = nil
	if err != nil {
		reason := tlssock.Reason(err)
		if tm, ok := m.metrics.(TLSMetrics); ok {
			tm.TLSHandshakeFailed(g.l.name, reason)
		}
		m.log.Debug("downstream TLS handshake failed", "listener", g.l.name, "chain", chain.name, "source", cs.source, "reason", reason, "error", err)
		return nil, nil
	}
	if err := cs.raw.SetDeadline(time.Time{}); err != nil {
		return nil, nil
	}
	st := conn.ConnectionState()
	return conn, &st
}
