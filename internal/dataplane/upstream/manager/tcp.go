package manager

import (
	"context"
	"errors"
	"net"
	"sync/atomic"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
)

var errConnectTimeout = errors.New("connect_timeout reached")

var _ tcp.Upstream = (*Manager)(nil)

// Dial implements the tcp proxy's Upstream: it picks a host of cluster
// (ring hash and Maglev from tcp.HashKey), takes a connection from the
// cluster's max_connections and the host's per-host limit (UO when full),
// and connects within connect_timeout. ORIGINAL_DST clusters (Istio's
// PassthroughCluster, and InboundPassthroughCluster, which binds
// 127.0.0.6) connect to c's original destination, and only when
// original_dst restored it: dialling the proxy's own address would loop.
// A cluster without hosts (Istio's BlackHoleCluster) has no healthy
// upstream. Outcomes go to outlier detection as local-origin results.
//
// A failed connection returns an *Error of kind ConnectFailure or
// ConnectTimeout, which the tcp proxy retries (another pick) up to
// max_connect_attempts. The connection releases its limits when closed;
// it is a tcp.PeerIdentifier reporting the host's verified SPIFFE ID
// (mTLS upstreams).
func (m *Manager) Dial(ctx context.Context, cluster string, c *listener.Conn) (net.Conn, error) {
	e := m.lookup(cluster)
	if e == nil {
		return nil, &Error{Kind: pool.NoCluster, Cluster: cluster, Err: errUnknownCluster}
	}
	var h *host.Host
	if e.c.Type == upstream.OriginalDst {
		if c == nil || !c.Restored || !c.Destination.IsValid() {
			return nil, &Error{Kind: pool.NoHealthyUpstream, Cluster: cluster, Err: errNoOriginalDst}
		}
		h = e.origHost(c.Destination).h
	} else {
		hash, ok := tcp.HashKey(ctx)
		var err error
		if h, err = e.in.Pick(lb.PickContext{Hash: hash, HasHash: ok}); err != nil {
			return nil, &Error{Kind: pool.NoHealthyUpstream, Cluster: cluster, Err: err}
		}
	}
	br := e.in.Breakers(circuit.Default)
	if err := br.TryAcquire(circuit.Connections); err != nil {
		return nil, &Error{Kind: pool.Overflow, Cluster: cluster, Host: h.Key(), Err: err}
	}
	if !h.AcquireConnection(e.c.PerHostMaxConnections[circuit.Default]) {
		br.Release(circuit.Connections)
		return nil, &Error{Kind: pool.Overflow, Cluster: cluster, Host: h.Key(), Err: circuit.ConnectionOverflow}
	}
	dctx := ctx
	if d := e.c.ConnectTimeout; d > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeoutCause(ctx, d, errConnectTimeout)
		defer cancel()
	}
	conn, peer, err := e.dial.dial(dctx, h, nil)
	if err != nil {
		br.Release(circuit.Connections)
		h.ReleaseConnection()
		return nil, e.connectFailed(ctx, dctx, h, err)
	}
	e.in.Report(h, outlier.Result{Event: outlier.LocalOriginConnectSuccessFinal})
	return &tcpConn{Conn: conn, h: h, br: br, peer: peer}, nil
}

// connectFailed accounts for a failed TCP connection attempt.
func (e *entry) connectFailed(ctx, dctx context.Context, h *host.Host, err error) error {
	kind := pool.ConnectFailure
	switch {
	case ctx.Err() != nil:
		if pool.IsTimeout(ctx) {
			kind = pool.Timeout
		} else {
			kind = pool.Canceled
		}
		err = context.Cause(ctx)
	case pool.ConnectTimedOut(dctx, err):
		kind, err = pool.ConnectTimeout, errConnectTimeout
	}
	if kind == pool.ConnectFailure || kind == pool.ConnectTimeout {
		h.Stats.CxConnectFail.Add(1)
		if !errors.Is(err, pool.ErrUnsupportedTransport) {
			e.in.Report(h, outlier.Result{Event: outlier.LocalOriginConnectFailed})
		}
	}
	return &Error{Kind: kind, Cluster: e.name, Host: h.Key(), Err: err}
}

// tcpConn is an upstream TCP connection; its first Close releases the
// cluster's and the host's connection counts. It passes half-closes on.
type tcpConn struct {
	net.Conn
	// peer is the host's identity as the transport socket verified it.
	peer   string
	h      *host.Host
	br     *circuit.Breakers
	closed atomic.Bool
}

func (c *tcpConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.br.Release(circuit.Connections)
		c.h.ReleaseConnection()
	}
	return err
}

// PeerIdentity is the host's SPIFFE ID when the transport socket verified
// its certificate, "" otherwise (tcp.PeerIdentifier).
func (c *tcpConn) PeerIdentity() string { return c.peer }

// CloseWrite half-closes the connection (a FIN; close_notify first on TLS).
func (c *tcpConn) CloseWrite() error { return listener.CloseWrite(c.Conn) }

// CloseRead shuts the reading side when the connection can.
func (c *tcpConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}
