package listener

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"time"
)

// Transport protocols a connection is classified with (FilterChainMatch
// transport_protocol): "tls" when the TLS inspector found a ClientHello,
// else "raw_buffer", Envoy's default.
const (
	TransportRawBuffer = "raw_buffer"
	TransportTLS       = "tls"
)

// Conn is one downstream connection as a filter chain's handler receives
// it. It is a net.Conn whose reads first replay the bytes the listener
// filters inspected, then read the socket, so a handler sees the stream
// from its first byte. The other fields describe what the listener learned;
// they are set before Serve and must not be changed by handlers.
type Conn struct {
	net.Conn

	// Listener is the name of the listener whose filter chain serves the
	// connection (after an original-destination hand-off, the target's).
	Listener string
	// Chain is the matched filter chain's name; "" for an unnamed chain.
	Chain string
	// DefaultChain reports that no filter chain matched and the listener's
	// default_filter_chain serves the connection.
	DefaultChain bool

	// Source is the peer's address (the downstream remote address).
	Source netip.AddrPort
	// Local is the address the connection was accepted on.
	Local netip.AddrPort
	// Destination is the local address as filter chain matching saw it:
	// the original destination when original_dst restored it, else Local.
	Destination netip.AddrPort
	// Restored reports that Destination was recovered by original_dst
	// (Envoy's localAddressRestored). ORIGINAL_DST clusters dial only
	// restored destinations.
	Restored bool

	// SNI is the server name of the TLS ClientHello, lower-cased; "" when
	// none was inspected.
	SNI string
	// ALPN lists the application protocols: those the TLS ClientHello
	// offers, or the one the HTTP inspector detected ("http/1.1",
	// "http/1.0", "h2c").
	ALPN []string
	// Transport is TransportTLS or TransportRawBuffer.
	Transport string

	// Accepted is when the connection was accepted.
	Accepted time.Time

	// TLS is the state of the TLS session the filter chain terminated
	// (Conn is then a *tls.Conn); nil for plaintext.
	TLS *tls.ConnectionState
	// MutualTLS reports that the peer presented a client certificate that
	// was verified against the chain's trust bundle and SAN matchers
	// (telemetry's connection_security_policy "mutual_tls").
	MutualTLS bool
	// PeerIdentity is the verified client certificate's first URI SAN
	// (its SPIFFE ID: telemetry's source_principal); "" without one.
	PeerIdentity string
}

type closeWriter interface{ CloseWrite() error }

type closeReader interface{ CloseRead() error }

// CloseWrite half-closes the connection (see the CloseWrite function).
func (c *Conn) CloseWrite() error { return CloseWrite(c.Conn) }

// CloseWrite half-closes c: a TCP FIN; for a *tls.Conn, close_notify and
// then the FIN of the connection under it (crypto/tls sends only the
// former). It returns errors.ErrUnsupported when c cannot half-close.
func CloseWrite(c net.Conn) error {
	switch v := c.(type) {
	case *tls.Conn:
		err := v.CloseWrite()
		if cw, ok := v.NetConn().(closeWriter); ok {
			err = errors.Join(err, cw.CloseWrite())
		}
		return err
	case closeWriter:
		return v.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CloseRead shuts down the reading side when the underlying connection
// supports it, and returns errors.ErrUnsupported otherwise.
func (c *Conn) CloseRead() error {
	if cr, ok := c.Conn.(closeReader); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// replayConn returns buffered bytes before reading from the wrapped
// connection. It forwards half-closes. Reads must not be concurrent (as
// for any net.Conn reader).
type replayConn struct {
	net.Conn
	pending []byte
}

// newReplayConn wraps c so that reads return pending first. pending is
// owned by the wrapper from then on.
func newReplayConn(c net.Conn, pending []byte) net.Conn {
	if len(pending) == 0 {
		return c
	}
	return &replayConn{Conn: c, pending: pending}
}

func (r *replayConn) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		if len(r.pending) == 0 {
			r.pending = nil
		}
		return n, nil
	}
	return r.Conn.Read(p)
}

func (r *replayConn) CloseWrite() error { return CloseWrite(r.Conn) }

func (r *replayConn) CloseRead() error {
	if cr, ok := r.Conn.(closeReader); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// addrPortOf converts a net.Addr to an unmapped netip.AddrPort (zero if it
// is not an IP address).
func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case nil:
		return netip.AddrPort{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.AddrPort{}
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
}
