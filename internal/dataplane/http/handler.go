package http

import (
	"context"
	"crypto/tls"
	"io"
	nethttp "net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// ServeHTTP is one request's way through the connection manager; see the
// package doc for the order of the steps.
func (m *Manager) ServeHTTP(w nethttp.ResponseWriter, r *nethttp.Request) {
	var lc *listener.Conn
	var ts *tls.ConnectionState
	remote := ""
	cs, hasConn := r.Context().Value(connKey{}).(*connState)
	if hasConn {
		lc, ts, remote = cs.lc, cs.tls, cs.remote
	} else {
		lc = &listener.Conn{} // allocated only when there is no connection state
	}
	if ts == nil {
		ts = r.TLS
	}
	x := &exchange{remote: remote}
	s := &x.stream
	s.Init(w, r, m.random)
	s.Conn = lc
	if hasConn {
		s.ConnError = cs.protoErrFn
		if s.ConnError == nil {
			s.ConnError = cs.protocolErr
		}
	}
	s.BufferLimit = m.bufferLimit
	s.Record.Start = time.Now()
	s.OnResponseHeaders(m.serverHook) // registered first: runs last
	var body *countingBody
	if r.Body != nil && r.Body != nethttp.NoBody {
		body = &x.body
		body.rc = r.Body
		r.Body = body
	}
	x.reqBody = body
	defer m.finish(x)
	m.serve(x, ts)
}

// exchange is what the connection manager allocates for one request, in
// one allocation: the stream, the request body's counter, the stream
// timers (armed or not) and room for the values of the headers the
// proxy sets. It is not retained once ServeHTTP returns (but for what
// the armed timers' functions hold until they are stopped).
type exchange struct {
	stream  filter.Stream
	body    countingBody
	reqBody *countingBody // &body when the request has one, else nil
	timers  streamTimers
	armed   bool // timers are in use
	// vals backs the values of the request headers the proxy sets.
	vals [4]string
	nval int
	// remote is the downstream address as text, made once per connection
	// (connState.remote); "" without a connection state.
	remote string
}

// setHeader sets h[k] to the single value v, taking the value slice
// from x.vals while there is room. k must be canonical.
func (x *exchange) setHeader(h nethttp.Header, k, v string) {
	if x.nval < len(x.vals) {
		i := x.nval
		x.vals[i] = v
		x.nval++
		h[k] = x.vals[i : i+1 : i+1]
		return
	}
	h[k] = []string{v}
}

// serve runs the steps up to the filter chain.
func (m *Manager) serve(x *exchange, ts *tls.ConnectionState) {
	s := &x.stream
	r, lc, rec := s.Request, s.Conn, &s.Record
	rec.Protocol, rec.Method = r.Proto, r.Method
	rec.Listener, rec.StatPrefix = lc.Listener, m.cfg.statPrefix
	rec.Source, rec.Destination = lc.Source, lc.Destination
	rec.Authority, rec.Path, rec.Header = r.Host, r.RequestURI, r.Header
	s.GRPC = filter.IsGRPC(r.Header.Get("Content-Type"))

	// 1. Limits and required headers.
	if status, details := m.checkRequest(r); status != 0 {
		s.Respond(filter.Reply{Status: status, Details: details, Close: r.ProtoMajor == 1})
		return
	}
	// 2. Path normalisation, before anything reads the path.
	path, act := requestTarget(r), pathForward
	if path != "*" {
		path, act = m.cfg.norm.apply(path)
	}
	switch act {
	case pathReject:
		s.Respond(filter.Reply{Status: nethttp.StatusBadRequest, Details: "path_normalization_failed", Close: r.ProtoMajor == 1})
		return
	case pathRedirect:
		if s.GRPC {
			s.Respond(filter.Reply{Status: nethttp.StatusBadRequest, Details: "path_normalization_failed"})
		} else {
			s.Respond(filter.Reply{Status: nethttp.StatusTemporaryRedirect, Header: nethttp.Header{"Location": {path}}, Details: "path_normalization_redirect"})
		}
		return
	}
	// 3. Sanitising, then the proxy's own headers.
	scheme := "http"
	if ts != nil {
		scheme = "https"
	}
	trusted := ts != nil && len(ts.PeerCertificates) > 0
	authority := m.authority(r.Host, lc.Destination)
	s.Upgrade = m.sanitize(r, trusted)
	m.setClientCert(r.Header, ts)
	s.UpgradeAllowed = s.Upgrade != "" && m.cfg.upgrades[s.Upgrade]
	rec.Client, rec.RequestID = m.proxyHeaders(x, r, lc.Source, scheme)
	if id := rec.RequestID; id != "" && m.cfg.fwd.requestIDInResponse {
		s.OnResponseHeaders(func(_ int, h nethttp.Header) { h.Set("X-Request-Id", id) })
	}
	if via := m.cfg.fwd.via; via != "" {
		s.OnResponseHeaders(func(_ int, h nethttp.Header) { h.Add("Via", via) })
	}
	rec.Authority, rec.Path = authority, path

	// 4. Routing.
	s.Routing = route.Request{
		Method:            r.Method,
		Scheme:            scheme,
		Authority:         authority,
		Path:              path,
		Headers:           filter.Header(r.Header),
		Source:            lc.Source,
		Local:             lc.Destination,
		PeerCertPresented: trusted,
		PeerCertValidated: ts != nil && len(ts.VerifiedChains) > 0,
		Random:            s.Rand(),
	}
	if tbl := m.routes.Load(); tbl != nil {
		if !trusted {
			for _, name := range tbl.InternalOnlyHeaders {
				r.Header.Del(name)
			}
		}
		if rt := tbl.Match(&s.Routing); rt != nil {
			m.routed(s, rt)
		}
	}
	m.startTimers(x)

	// 5. The filter chain; the router ends it.
	m.chain.ServeStream(s)
}

// routed records the matched route and picks the cluster, once, so that
// filters and the router agree on it.
func (m *Manager) routed(s *filter.Stream, rt *route.Route) {
	s.Route = rt
	s.Record.RouteName, s.Record.Route = rt.Name, rt
	if f, ok := rt.Action.(*route.Forward); ok {
		s.Cluster, s.Weighted, s.ClusterOK = f.ClusterFor(&s.Routing)
	}
	if v, ok := rt.BufferLimit(); ok {
		s.BufferLimit = int(v)
	}
}

// requestTarget is the request's path and query as sent (origin form); an
// absolute-form target contributes its path and query.
func requestTarget(r *nethttp.Request) string {
	u := r.RequestURI
	if u == "" {
		return r.URL.RequestURI()
	}
	if strings.HasPrefix(u, "/") || u == "*" {
		return u
	}
	if r.URL != nil && r.URL.IsAbs() {
		return r.URL.RequestURI()
	}
	return u
}

// finish records the request and hands the record to the observer. A
// panic (the router's stream reset included) is recorded, then goes on up
// to net/http.
func (m *Manager) finish(x *exchange) {
	p := recover()
	s, body := &x.stream, x.reqBody
	if x.armed {
		m.countTimeout(s.Request.Context())
		x.timers.stop()
	}
	rec := &s.Record
	rec.Duration = time.Since(rec.Start)
	if body != nil {
		rec.BytesReceived += body.n.Load()
	}
	if p != nil && p != nethttp.ErrAbortHandler {
		m.log.Error("panic serving request", "panic", p, "path", rec.Path)
	}
	if m.observer != nil {
		m.observer.Observe(rec)
	}
	if p != nil {
		panic(p)
	}
}

// streamTimers are a request's stream idle and request timeouts; they
// cancel the stream's context with filter.ErrStreamIdleTimeout or
// filter.ErrRequestTimeout.
type streamTimers struct {
	cancel  context.CancelCauseFunc
	idle    *time.Timer
	request *time.Timer
	start   time.Time
	d       time.Duration
	last    atomic.Int64 // activity, in nanoseconds since start
	stopped atomic.Bool
}

// startTimers arms the stream idle timeout (the route's idle_timeout, else
// stream_idle_timeout; activity is request body bytes read and response
// bytes written) and the request timeout (until the request body has been
// read). Without either, the request's context is used as it is and
// x.armed stays false.
func (m *Manager) startTimers(x *exchange) {
	s, body := &x.stream, x.reqBody
	idle := m.cfg.timeouts.streamIdle
	if s.Route != nil {
		if f, ok := s.Route.Action.(*route.Forward); ok && f.IdleTimeout.Set {
			idle = f.IdleTimeout.D
		}
	}
	reqTimeout := m.cfg.timeouts.request
	if body == nil {
		reqTimeout = 0 // the request is complete
	}
	if idle <= 0 && reqTimeout <= 0 {
		return
	}
	t := &x.timers
	x.armed = true
	ctx, cancel := context.WithCancelCause(s.Request.Context())
	s.Request = s.Request.WithContext(ctx)
	t.cancel, t.start, t.d = cancel, time.Now(), idle
	const never = 1 << 62
	if idle > 0 {
		t.idle = time.AfterFunc(never, t.checkIdle)
		touch := func() { t.last.Store(int64(time.Since(t.start))) }
		s.OnActivity(touch)
		if body != nil {
			body.touch = touch
		}
		t.idle.Reset(idle)
	}
	if reqTimeout > 0 {
		t.request = time.AfterFunc(never, func() { cancel(filter.ErrRequestTimeout) })
		body.onEOF = func() { t.request.Stop() }
		t.request.Reset(reqTimeout)
	}
}

// countTimeout counts a stream ended by its idle or request timeout.
func (m *Manager) countTimeout(ctx context.Context) {
	switch context.Cause(ctx) {
	case filter.ErrStreamIdleTimeout:
		m.count(StatStreamIdleTimeout)
	case filter.ErrRequestTimeout:
		m.count(StatRequestTimeout)
	}
}

func (t *streamTimers) checkIdle() {
	if t.stopped.Load() {
		return
	}
	idleFor := time.Since(t.start) - time.Duration(t.last.Load())
	if idleFor >= t.d {
		t.cancel(filter.ErrStreamIdleTimeout)
		return
	}
	t.idle.Reset(t.d - idleFor)
}

func (t *streamTimers) stop() {
	t.stopped.Store(true)
	if t.idle != nil {
		t.idle.Stop()
	}
	if t.request != nil {
		t.request.Stop()
	}
	if t.cancel != nil {
		t.cancel(nil)
	}
}

// countingBody counts the request body bytes read from downstream and
// reports activity and the end of the body to the stream's timers.
type countingBody struct {
	rc    io.ReadCloser
	n     atomic.Int64
	touch func()
	onEOF func()
	once  sync.Once
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
		if b.touch != nil {
			b.touch()
		}
	}
	if err == io.EOF && b.onEOF != nil {
		b.once.Do(b.onEOF)
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
