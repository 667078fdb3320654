package http

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync"
	"sync/atomic"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// newServer builds the net/http server that parses this manager's
// connections. It never listens: Serve hands it one connection at a time
// through a one-connection listener, on the caller's goroutine.
//
// What net/http provides and how it is set (see doc.go for the rest):
// HTTP/1.1 and HTTP/2 (prior knowledge on plaintext connections, ALPN "h2"
// on TLS ones; no h2c upgrade) per codec_type; request parsing and its
// rejections; ReadHeaderTimeout (request_headers_timeout); IdleTimeout
// (common_http_protocol_options.idle_timeout, both protocols);
// MaxHeaderBytes (max_request_headers_kb: 431 on HTTP/1, also HTTP/2's
// SETTINGS_MAX_HEADER_LIST_SIZE and CONTINUATION limit); HTTP/2
// MaxConcurrentStreams (at most that many handlers per connection, the
// rapid-reset bound), flow-control windows and keepalive pings.
func (m *Manager) newServer() *nethttp.Server {
	var p nethttp.Protocols
	switch m.cfg.codec {
	case hcmv3.HttpConnectionManager_HTTP1:
		p.SetHTTP1(true)
	case hcmv3.HttpConnectionManager_HTTP2:
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP2(true)
	default:
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP2(true)
	}
	h2 := m.cfg.h2
	h2.CountError = func(kind string) {
		m.log.Debug("http2 protocol error", "kind", kind)
	}
	return &nethttp.Server{
		Handler:                      m,
		Protocols:                    &p,
		HTTP2:                        &h2,
		ReadHeaderTimeout:            m.cfg.timeouts.requestHeaders,
		IdleTimeout:                  m.cfg.timeouts.idle,
		MaxHeaderBytes:               m.cfg.limits.maxHeaderBytes,
		DisableGeneralOptionsHandler: true,
		ErrorLog:                     slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
		BaseContext:                  func(l net.Listener) context.Context { return l.(*connListener).ctx },
		ConnState:                    m.connStateHook,
	}
}

// connKey is the context key of a request's *connState.
type connKey struct{}

// connState is one downstream connection while it is served.
type connState struct {
	lc   *listener.Conn
	tls  *tls.ConnectionState
	done chan struct{}
	once sync.Once
	// protoErr is the HTTP/1 guard's verdict, set by the reader goroutine
	// and read by handlers.
	protoErr atomic.Pointer[protocolError]
}

// protocolErr is the connection's protocol error, or nil.
func (c *connState) protocolErr() error {
	if e := c.protoErr.Load(); e != nil {
		return e
	}
	return nil
}

// finish marks the connection over (closed by net/http, by the upgrade
// path after a hijack, or by Serve when its context ends).
func (c *connState) finish() { c.once.Do(func() { close(c.done) }) }

// Serve implements listener.ConnHandler: it serves c's HTTP/1.1 or HTTP/2
// requests until the connection ends, and returns promptly once ctx is
// done (the connection is then closed; requests in flight see their
// contexts cancelled, which is a downstream disconnect for them).
//
// A plaintext connection (and HTTP/1.1 over TLS) is read through the
// HTTP/1 framing guard (h1guard.go); the guard steps aside for HTTP/2. A
// *tls.Conn whose ALPN chose "h2" goes to net/http as is, which needs the
// concrete type to serve HTTP/2 over TLS.
func (m *Manager) Serve(ctx context.Context, c *listener.Conn) {
	cs := &connState{lc: c, done: make(chan struct{})}
	var nc net.Conn
	if tc, ok := c.Conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cs.tls = &st
		if st.NegotiatedProtocol == "h2" {
			nc = tc
			m.tlsConns.Store(nc, cs)
			defer m.tlsConns.Delete(nc)
		}
	}
	if nc == nil {
		nc = &guardConn{Conn: c, cs: cs, guard: h1guard{maxHead: m.cfg.limits.maxHeaderBytes + 4096 + 1}}
	}
	stop := context.AfterFunc(ctx, func() {
		_ = nc.Close()
		cs.finish()
	})
	defer stop()
	l := &connListener{conn: nc, cs: cs, ctx: context.WithValue(ctx, connKey{}, cs)}
	_ = m.srv.Serve(l)
}

// connStateHook ends an HTTP/2-over-TLS connection's Serve when net/http
// closes it (guarded connections signal through Close).
func (m *Manager) connStateHook(c net.Conn, st nethttp.ConnState) {
	if st != nethttp.StateClosed {
		return
	}
	if v, ok := m.tlsConns.Load(c); ok {
		v.(*connState).finish()
	}
}

// connListener hands net/http a single connection, then blocks until
// that connection is over.
type connListener struct {
	conn   net.Conn
	cs     *connState
	handed atomic.Bool
	// ctx is the connection's base context, for http.Server.BaseContext:
	// the listener's Serve context plus the connection state. net/http
	// asks for it through the listener, so it has to live here.
	ctx context.Context
}

func (l *connListener) Accept() (net.Conn, error) {
	if l.handed.CompareAndSwap(false, true) {
		return l.conn, nil
	}
	<-l.cs.done
	return nil, net.ErrClosed
}

// Close does not close the connection: net/http closes the listener when
// Serve returns, which is when the connection is over.
func (l *connListener) Close() error { return nil }

func (l *connListener) Addr() net.Addr { return l.conn.LocalAddr() }

// guardConn is a downstream connection as net/http reads it: through the
// HTTP/1 framing guard, with Close ending Serve.
type guardConn struct {
	*listener.Conn
	cs    *connState
	guard h1guard
	err   error // sticky guard error
}

func (g *guardConn) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.Conn.Read(p)
	if n > 0 && !g.guard.off {
		k, gerr := g.guard.scan(p[:n])
		if gerr != nil {
			g.err = gerr
			g.cs.protoErr.Store(gerr)
			if k > 0 {
				return k, nil
			}
			return 0, gerr
		}
	}
	return n, err
}

func (g *guardConn) Close() error {
	err := g.Conn.Close()
	g.cs.finish()
	return err
}
