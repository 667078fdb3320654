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

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
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
	x := m.newExchange()
	x.remote, x.cs = remote, cs
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
	if filter.HasBody(r) {
		body = &x.body
		body.rc = r.Body
		r.Body = body
	}
	x.reqBody = body
	defer m.finish(x)
	m.serve(x, ts)
}

// exchange is what the connection manager needs for one request, in
// one allocation: the stream, the request body's counter, the stream
// timers (armed or not) and room for the values of the headers the
// proxy sets. A request that ends cleanly hands its exchange to the next
// one (recycle); one that may still be reached after ServeHTTP returns
// (a timer or watcher that ran, a body or connection still in use)
// leaves it to the collector.
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
	// cs is the connection's state, nil without one.
	cs *connState
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
	s.GRPC = filter.IsGRPC(h1wire.Get(r.Header, "Content-Type"))

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
	m.setClientCert(x, r.Header, ts)
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

// newExchange returns a zero exchange, one a past request recycled when
// there is one.
func (m *Manager) newExchange() *exchange {
	if x, ok := m.exchanges.Get().(*exchange); ok {
		return x
	}
	return new(exchange)
}

// recycle zeroes x for the next request, keeping its stopped timer, and
// pools it. Only a clean exchange may come here: the request had no body
// (a transport may still read one), was not hijacked or upgraded, did not
// panic, and its timers, their watch of the request's context and its
// context's watchers all stopped before they ran — so that nothing holds
// x any more. Its context (streamCtx) is not part of it: a goroutine
// still holding that sees it ended.
func (m *Manager) recycle(x *exchange) {
	timer := x.timers.timer
	*x = exchange{}
	x.timers.timer = timer
	m.exchanges.Put(x)
}

// finish records the request and hands the record to the observer. A
// panic (the router's stream reset included) is recorded, then goes on up
// to net/http.
func (m *Manager) finish(x *exchange) {
	p := recover()
	s, body := &x.stream, x.reqBody
	clean := body == nil && p == nil && s.Upgrade == "" && !s.Hijacked()
	if x.armed {
		m.countTimeout(s.Context())
		clean = x.timers.stop() && clean
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
	if clean {
		m.recycle(x)
	}
}

// streamTimers are a request's stream idle, request and route timeouts,
// on one timer: each cancels the stream's context with its cause
// (filter.ErrStreamIdleTimeout, filter.ErrRequestTimeout, the router's).
// Deadlines are durations since start; mu guards them and the timer's
// schedule, last (activity) is atomic so that the write path takes no
// lock.
type streamTimers struct {
	cancel context.CancelCauseFunc
	start  time.Time
	idle   time.Duration // 0: none
	last   atomic.Int64  // activity, in nanoseconds since start

	mu         sync.Mutex
	parent     context.Context // the request's context
	parentStop func() bool     // the watch on parent, with the first watcher
	timer      *time.Timer
	next       time.Duration // when the timer fires, since start; 0: not armed
	request    time.Duration // request deadline; 0: none, or the body is in
	route      time.Duration // route deadline; 0: none
	routeCause error
	stopped    bool

	w watchers // streamCtx.Watch
}

// startTimers arms the stream idle timeout (the route's idle_timeout, else
// stream_idle_timeout; activity is request body bytes read and response
// bytes written) and the request timeout (until the request body has been
// read). Without either, the request's context is used as it is and
// x.armed stays false until the router arms a route timeout (ArmTimeout).
func (m *Manager) startTimers(x *exchange) {
	s, body := &x.stream, x.reqBody
	s.SetDeadlines(x)
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
	x.arm()
	t := &x.timers
	if idle > 0 {
		t.idle = idle
		s.OnActivity(t)
	}
	if body != nil {
		body.timers = t
	}
	t.mu.Lock()
	if reqTimeout > 0 {
		t.request = reqTimeout
	}
	t.schedule(0)
	t.mu.Unlock()
}

// arm gives the stream its own cancellable context, once.
func (x *exchange) arm() {
	if x.armed {
		return
	}
	x.armed = true
	s, t := &x.stream, &x.timers
	parent := s.Context()
	ctx, cancel := context.WithCancelCause(parent)
	s.SetContext(&streamCtx{Context: ctx, t: t})
	t.parent, t.cancel, t.start = parent, cancel, time.Now()
}

// streamCtx is the stream's context: a cancellable context (its Done,
// Err and Value, and so context.Cause and the contexts derived from it,
// are the embedded one's) that also runs watchers when it ends without
// what context.AfterFunc allocates per call. The upstream HTTP/1 pool
// watches the request's context this way (pool: watcher). Its own
// timeouts and the end of the stream run the watchers at once; the
// request's context ending (the client gone, a drain) runs them through
// one watch of that context (its own watchers when it is the HTTP/1
// connection's, else context.AfterFunc), registered with the first
// watcher.
type streamCtx struct {
	context.Context
	t *streamTimers
}

// Watch runs f, in a goroutine of its own, when the context ends, unless
// Unwatch(id) comes first. It reports false, taking nothing, when the
// context has ended or both watcher slots are in use: the caller then
// uses context.AfterFunc.
func (c *streamCtx) Watch(f func()) (id int, ok bool) {
	t := c.t
	if c.Err() != nil {
		return 0, false
	}
	if id, ok = t.w.add(f); !ok {
		return 0, false
	}
	t.mu.Lock()
	if t.parentStop == nil && !t.stopped {
		t.parentStop = watchContext(t.parent, t.parentDone)
	}
	t.mu.Unlock()
	return id, true
}

// Unwatch removes the watcher id and reports whether it had not run (and
// never will), as the stop function of context.AfterFunc.
func (c *streamCtx) Unwatch(id int) bool { return c.t.w.remove(id) }

// parentDone ends the stream with the request's context, as the
// cancellation propagated from it does, before running the watchers.
func (t *streamTimers) parentDone() {
	t.cancel(context.Cause(t.parent))
	t.w.run()
}

// ArmTimeout implements filter.Deadlines: the route timeout, on the
// stream timers.
func (x *exchange) ArmTimeout(d time.Duration, cause error) {
	x.arm()
	t := &x.timers
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	now := time.Since(t.start)
	t.route, t.routeCause = max(now+d, 1), cause
	t.schedule(now)
}

// DisarmTimeout implements filter.Deadlines.
func (x *exchange) DisarmTimeout() {
	t := &x.timers
	t.mu.Lock()
	t.route, t.routeCause = 0, nil
	t.mu.Unlock()
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

// Touch records activity for the idle timeout (filter.Activity).
func (t *streamTimers) Touch() { t.last.Store(int64(time.Since(t.start))) }

// bodyDone ends the request timeout: the request body is in.
func (t *streamTimers) bodyDone() {
	t.mu.Lock()
	t.request = 0
	t.mu.Unlock()
}

// schedule makes the timer fire at the earliest deadline, when that is
// before its current schedule; now is the time since start. mu is held.
func (t *streamTimers) schedule(now time.Duration) {
	at := t.due(now)
	if at == 0 || (t.next != 0 && t.next <= at) {
		return
	}
	t.next = at
	if t.timer == nil {
		t.timer = time.AfterFunc(at-now, t.check)
		return
	}
	t.timer.Reset(at - now)
}

// due is the earliest deadline, 0 for none. mu is held.
func (t *streamTimers) due(now time.Duration) time.Duration {
	var at time.Duration
	earliest := func(d time.Duration) {
		if d > 0 && (at == 0 || d < at) {
			at = d
		}
	}
	if t.idle > 0 {
		earliest(max(time.Duration(t.last.Load())+t.idle, now+1))
	}
	earliest(t.request)
	earliest(t.route)
	return at
}

// check runs when the timer fires: it cancels the stream for the first
// deadline past, or sets the timer for the next one.
func (t *streamTimers) check() {
	if t.checkLocked() {
		t.w.run()
	}
}

// checkLocked is check under mu; it reports whether it ended the stream.
func (t *streamTimers) checkLocked() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next = 0
	if t.stopped {
		return false
	}
	now := time.Since(t.start)
	var cause error
	switch {
	case t.idle > 0 && now-time.Duration(t.last.Load()) >= t.idle:
		cause = filter.ErrStreamIdleTimeout
	case t.request > 0 && now >= t.request:
		cause = filter.ErrRequestTimeout
	case t.route > 0 && now >= t.route:
		cause = t.routeCause
	}
	if cause != nil {
		t.stopped = true
		t.cancel(cause)
		return true
	}
	t.schedule(now)
	return false
}

// stop ends the timers, the stream's context and its watch of the
// request's; it reports whether none of them ran or still runs: no timer
// function pending or past (next is cleared only by check, under mu) and
// not stopped by one, no watcher left to run (each watcher's owner has
// removed it), the watch of the request's context removed unrun.
func (t *streamTimers) stop() (clean bool) {
	t.mu.Lock()
	clean = !t.stopped
	t.stopped = true
	if t.timer != nil && t.next != 0 && !t.timer.Stop() {
		clean = false // fired: check is waiting for mu
	}
	parentStop := t.parentStop
	t.mu.Unlock()
	if t.cancel != nil {
		t.cancel(nil)
		if t.w.run() > 0 {
			clean = false
		}
	}
	if parentStop != nil && !parentStop() {
		clean = false
	}
	return clean
}

// countingBody counts the request body bytes read from downstream and
// reports activity and the end of the body to the stream's timers.
type countingBody struct {
	rc     io.ReadCloser
	n      atomic.Int64
	timers *streamTimers // nil without an idle or request timeout
	eof    atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
		if b.timers != nil && b.timers.idle > 0 {
			b.timers.Touch()
		}
	}
	if err == io.EOF && b.timers != nil && !b.eof.Swap(true) {
		b.timers.bodyDone()
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }
