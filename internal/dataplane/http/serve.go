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

// newServer builds the net/http server that serves this manager's HTTP/2
// connections (and, for an HTTP2-only codec_type, refuses HTTP/1 ones).
// It never listens: Serve hands it one connection at a time through a
// one-connection listener, on the caller's goroutine.
//
// What net/http provides and how it is set (see doc.go for the rest):
// HTTP/2 (prior knowledge on plaintext connections, ALPN "h2" on TLS
// ones; no h2c upgrade) per codec_type; request parsing and its
// rejections; ReadHeaderTimeout (request_headers_timeout); IdleTimeout
// (common_http_protocol_options.idle_timeout); MaxHeaderBytes
// (max_request_headers_kb: HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE and
// CONTINUATION limit); MaxConcurrentStreams (at most that many handlers
// per connection, the rapid-reset bound), flow-control windows and
// keepalive pings.
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
		if kind == "conn_ENHANCE_YOUR_CALM_too_many_early_resets" {
			m.count(StatPrematureResets)
		}
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
	// protoErr is a framing error the HTTP/1 codec found in a request
	// body, set by the body's reader and read by handlers.
	protoErr atomic.Pointer[protocolError]
	// protoErrFn is protocolErr, made once for the connection's requests.
	protoErrFn func() error
	// remote is the downstream address as text (lc.Source's address), made
	// once for the connection's requests' x-forwarded-for and logs.
	remote string
	// xfcc is the peer's x-forwarded-client-cert element, made by the
	// connection's first request that sets the header.
	xfcc atomic.Pointer[connXFCC]
}

// protocolErr is the connection's protocol error, or nil.
func (c *connState) protocolErr() error {
	if e := c.protoErr.Load(); e != nil {
		return e
	}
	return nil
}

// finish marks a connection served by net/http over (closed by net/http,
// or by Serve when its context ends).
func (c *connState) finish() { c.once.Do(func() { close(c.done) }) }

// Serve implements listener.ConnHandler: it serves c's HTTP/1.1 or HTTP/2
// requests until the connection ends, and returns promptly once ctx is
// done (the connection is then closed; requests in flight see their
// contexts cancelled, which is a downstream disconnect for them).
//
// HTTP/1 connections (plaintext, or TLS without ALPN h2) are served by
// the package's own codec (h1server.go), which hands a plaintext
// connection opening with the HTTP/2 preface to net/http. A *tls.Conn
// whose ALPN chose "h2" goes to net/http as is (it needs the concrete
// type to serve HTTP/2 over TLS), and so does every connection of an
// HTTP2-only codec_type.
func (m *Manager) Serve(ctx context.Context, c *listener.Conn) {
	cs := &connState{lc: c, done: make(chan struct{})}
	cs.protoErrFn = cs.protocolErr
	if c.Source.IsValid() {
		cs.remote = c.Source.Addr().String()
	}
	if tc, ok := c.Conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		cs.tls = &st
		if st.NegotiatedProtocol == "h2" && m.cfg.codec != hcmv3.HttpConnectionManager_HTTP1 {
			// Served as prior-knowledge HTTP/2 over the decrypted stream,
			// so that the flood guard sees its frames; the TLS state
			// travels in cs (requests read it from there, not r.TLS).
			m.serveNetHTTP(ctx, &netConn{Conn: tc, cs: cs}, cs)
			return
		}
		if st.NegotiatedProtocol == "h2" {
			m.tlsConns.Store(net.Conn(tc), cs)
			defer m.tlsConns.Delete(net.Conn(tc))
			m.serveNetHTTP(ctx, tc, cs)
			return
		}
	}
	if m.cfg.codec == hcmv3.HttpConnectionManager_HTTP2 {
		m.serveNetHTTP(ctx, &netConn{Conn: c, cs: cs}, cs)
		return
	}
	m.h1.serve(ctx, cs)
}

// serveNetHTTP serves nc with the net/http server through a
// one-connection listener, until the connection is over.
func (m *Manager) serveNetHTTP(ctx context.Context, nc net.Conn, cs *connState) {
	stop := context.AfterFunc(ctx, func() {
		_ = nc.Close()
		cs.finish()
	})
	defer stop()
	if _, isTLS := nc.(*tls.Conn); !isTLS {
		nc = m.newH2Guard(nc)
	}
	l := &connListener{conn: nc, cs: cs, ctx: context.WithValue(ctx, connKey{}, cs)}
	_ = m.srv.Load().Serve(l)
}

// newH1Server builds the HTTP/1 codec of this manager.
func (m *Manager) newH1Server() *h1Server {
	return &h1Server{
		handler:       m,
		log:           m.log,
		maxHead:       m.cfg.limits.maxHeaderBytes,
		headerTimeout: m.cfg.timeouts.requestHeaders,
		idleTimeout:   m.cfg.timeouts.idle,
		closeCheck:    defaultCloseCheck,
		stats:         m.count,
		handoff:       m.serveNetHTTP,
	}
}

// connStateHook ends an HTTP/2-over-TLS connection's Serve when net/http
// closes it (other connections signal through netConn.Close).
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
