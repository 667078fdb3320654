package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/h1wire"
	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// TypeURL is the typed_config type of the filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

// DefaultMaxMirrors bounds the mirrored requests in flight per router.
const DefaultMaxMirrors = 64

// copyBufferSize is the size of the pooled body copy buffers.
const copyBufferSize = 32 << 10

// Factory builds routers.
type Factory struct {
	// Upstream sends the requests. Required.
	Upstream Upstream
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// MaxMirrors bounds the mirrored requests in flight (0:
	// DefaultMaxMirrors); beyond it mirrors are dropped.
	MaxMirrors int
}

// Build decodes and validates the Router config.
func (f Factory) Build(name string, config *anypb.Any) (filter.Filter, error) {
	if f.Upstream == nil {
		return nil, errors.New("router: no Upstream")
	}
	msg := &routerv3.Router{}
	if config != nil {
		if err := anypb.UnmarshalTo(config, msg, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("typed_config: %w", err)
		}
		if err := pgv.ValidateAll(msg); err != nil {
			return nil, fmt.Errorf("invalid Router: %w", err)
		}
	}
	if len(msg.GetUpstreamHttpFilters()) > 0 {
		return nil, errors.New("upstream_http_filters are not supported")
	}
	return New(Config{
		Upstream:             f.Upstream,
		Logger:               f.Logger,
		MaxMirrors:           f.MaxMirrors,
		SuppressEnvoyHeaders: msg.GetSuppressEnvoyHeaders(),
	}), nil
}

// Config configures a Router.
type Config struct {
	Upstream             Upstream
	Logger               *slog.Logger
	MaxMirrors           int
	SuppressEnvoyHeaders bool
}

// Router is the terminal filter. It is safe for concurrent use; Close
// stops its mirrored requests.
type Router struct {
	up       Upstream
	log      *slog.Logger
	suppress bool

	copyBufs sync.Pool // *[]byte of copyBufferSize
	bodyBufs sync.Pool // *[]byte for replay buffers
	targets  sync.Pool // *target, recycled
	mirrors  mirrorPool
}

// New returns a Router. It starts nothing.
func New(cfg Config) *Router {
	r := &Router{up: cfg.Upstream, log: cfg.Logger, suppress: cfg.SuppressEnvoyHeaders}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.copyBufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	r.bodyBufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	r.mirrors.init(cfg.MaxMirrors)
	return r
}

// Terminal implements filter.Terminal.
func (*Router) Terminal() bool { return true }

// Wrap implements filter.Filter: the router ends the chain.
func (r *Router) Wrap(filter.Handler) filter.Handler { return r }

// Close cancels the mirrored requests in flight and waits for them.
func (r *Router) Close() error {
	r.mirrors.close()
	return nil
}

// ServeStream carries out the route's action.
func (r *Router) ServeStream(s *filter.Stream) {
	rt := s.Route
	if rt == nil {
		s.SetFlags(filter.NoRouteFound)
		s.Respond(filter.Reply{Status: http.StatusNotFound, Details: "route_not_found"})
		return
	}
	s.OnRouteResponseHeaders()
	switch a := rt.Action.(type) {
	case *route.Redirect:
		h := http.Header{"Location": {rt.Location(&s.Routing)}}
		s.Respond(filter.Reply{Status: a.Status, Header: h, Details: "direct_response"})
	case *route.DirectResponse:
		var h http.Header
		if loc := a.Location(&s.Routing); loc != "" {
			h = http.Header{"Location": {loc}}
		}
		s.Respond(filter.Reply{Status: a.Status, Body: a.Body, Header: h, Details: "direct_response"})
	case *route.Forward:
		r.forward(s, rt, a)
	default:
		s.SetFlags(filter.NoRouteFound)
		s.Respond(filter.Reply{Status: http.StatusNotFound, Details: "route_not_found"})
	}
}

// target is where a request goes: the upstream authority, path and
// headers, computed once for every attempt.
type target struct {
	authority string
	url       url.URL
	header    http.Header
	// spare is room for values of fields the router adds (set).
	spare []string
	// vals backs the header values of a request with few of them.
	vals [smallHeader]string
	// first is the first attempt's upstream request.
	first http.Request
}

// newTarget returns a zero target, with the empty header map of a
// recycled one when there is one.
func (r *Router) newTarget() *target {
	if tg, ok := r.targets.Get().(*target); ok {
		return tg
	}
	return new(target)
}

// recycle zeroes tg, keeping its header map cleared when it is small, and
// pools it. Only a target nothing reads any more may come here: one
// attempt, no request body (a transport may read one after the
// response), and the response read to its end and closed — the HTTP/1
// pool is done with the request once it has written it, net/http's
// HTTP/2 client once it has the response.
func (r *Router) recycle(tg *target) {
	*tg = target{header: h1wire.Reusable(tg.header, smallHeader)}
	r.targets.Put(tg)
}

// smallHeader is how many header values (the router's included) a
// request may have to keep them in target.vals.
const smallHeader = 16

// set sets a header field to v, its value slice taken from spare.
func (tg *target) set(k, v string) {
	if n := len(tg.spare); n < cap(tg.spare) {
		tg.spare = append(tg.spare, v)
		tg.header[k] = tg.spare[n : n+1 : n+1]
		return
	}
	tg.header[k] = []string{v}
}

// addedFields is how many fields the router may add to a request's
// headers: X-Envoy-Original-Path, X-Forwarded-Host,
// X-Envoy-Expected-Rq-Timeout-Ms and X-Envoy-Attempt-Count.
const addedFields = 4

// cloneHeader copies h with room for extra more fields: one map (out,
// when it is not nil: an empty map to fill) and one backing array for
// every value, the extra ones' included (returned as spare, empty); the
// array is small when it is large enough.
func cloneHeader(h http.Header, extra int, small []string, out http.Header) (http.Header, []string) {
	nv := 0
	for _, vs := range h {
		nv += len(vs)
	}
	var sv []string
	if nv+extra <= len(small) {
		sv = small[: nv : nv+extra]
	} else {
		sv = make([]string, nv, nv+extra)
	}
	// Room in the map for the two fields most requests get (the expected
	// timeout, the attempt count): a hint beyond 8 fields costs a bigger
	// table up front.
	if out == nil {
		out = make(http.Header, len(h)+2)
	}
	for k, vs := range h {
		if vs == nil {
			out[k] = nil
			continue
		}
		n := copy(sv, vs)
		out[k] = sv[:n:n]
		sv = sv[n:]
	}
	return out, sv[:0]
}

// forward sends the request upstream, with retries, and streams the
// response back.
func (r *Router) forward(s *filter.Stream, rt *route.Route, f *route.Forward) {
	s.Record.Cluster = s.Cluster
	if !s.ClusterOK {
		s.SetFlags(filter.NoClusterFound)
		s.Respond(filter.Reply{Status: f.ClusterNotFoundStatus, Details: "cluster_not_found"})
		return
	}
	if s.Upgrade != "" {
		r.upgrade(s, rt, f)
		return
	}

	// The route timeout is a deadline on the stream's own context (the
	// connection manager's timers) when the stream has them; else, a
	// context of its own.
	ctx := s.Context()
	timeout := routeTimeout(s, f)
	if timeout > 0 {
		if s.Timeout(timeout, errRouteTimeout) {
			defer s.StopTimeout()
			ctx = s.Context() // the timers may have given the stream its own
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeoutCause(ctx, timeout, errRouteTimeout)
			defer cancel()
		}
	}
	tg := r.target(s, rt, f, timeout)

	var body *replayBody
	if filter.HasBody(s.Request) {
		body = newReplayBody(s.Request.Body, s.BufferLimit, &r.bodyBufs)
		defer body.release()
		rc := http.NewResponseController(s.Writer())
		if s.Request.ProtoMajor == 1 {
			// Keep reading the request body while the response streams.
			_ = rc.EnableFullDuplex()
		}
		// A transport reading the body blocks on the client, and
		// net/http's Transport waits for that read before a cancelled
		// RoundTrip returns: when the request ends (timeouts, client
		// gone) or is answered before its body is in, a read deadline
		// unblocks the read.
		// The AfterFunc may start just before the handler returns (an
		// HTTP/2 stream reset): past the return the ResponseWriter is
		// gone (net/http's HTTP/2 writer panics), so it checks under mu.
		var mu sync.Mutex
		returned := false
		unblock := func() {
			mu.Lock()
			defer mu.Unlock()
			if !returned {
				_ = rc.SetReadDeadline(time.Now())
			}
		}
		stop := context.AfterFunc(ctx, unblock)
		defer func() {
			if stop() && !body.finished() {
				unblock()
			}
			mu.Lock()
			returned = true
			mu.Unlock()
		}()
	}

	pick := routePick(s, f)
	if f.Hash != nil {
		var cookies []route.SetCookie
		pick.Hash, pick.HasHash, cookies = f.Hash.HashWithCookies(&s.Routing, nil)
		if len(cookies) > 0 {
			s.OnResponseHeaders(func(_ int, h http.Header) {
				for _, c := range cookies {
					h.Add("Set-Cookie", c.String())
				}
			})
		}
	}
	if len(f.Mirrors) > 0 && body == nil {
		r.mirror(s, f, tg, nil, timeout)
	}

	var rs retryState
	retry := newRetryState(&rs, f.Retry, s)
	if retry != nil {
		pick.SelectionRetries = uint32(max(retry.policy.HostSelectionMaxAttempts, 0))
	}
	start := time.Now()
	var pt *perTry
	if p := f.Retry; p != nil && p.PerTryTimeout > 0 {
		pt = newPerTry(p.PerTryTimeout)
	}
	res, cancelAttempt := r.attempts(ctx, s, tg, body, pick, retry, pt)
	if cancelAttempt != nil {
		defer cancelAttempt(nil)
	}

	if res.err != nil {
		r.fail(s, f, ctx, body, res.err)
		return
	}
	s.Record.UpstreamServiceTime = time.Since(start)
	if len(f.Mirrors) > 0 && body != nil {
		if data, ok := body.complete(); ok {
			r.mirror(s, f, tg, data, timeout)
		}
	}
	if r.respond(s, ctx, res.resp, body) && body == nil && s.Record.Attempts == 1 && pt == nil {
		releaseResponse(res.resp)
		r.recycle(tg)
	}
}

// releaseResponse hands an upstream response the router is done with —
// answered to the end, its header values copied downstream — back to the
// upstream for reuse, when the upstream offers it (the pool's HTTP/1.1
// responses: a Release method on the body). Called at most once per
// response, after which nothing here touches it.
func releaseResponse(resp *http.Response) {
	if rb, ok := resp.Body.(interface{ Release() bool }); ok {
		rb.Release()
	}
}

// attempts runs the first attempt and the retries. The returned result's
// response stays bound to the returned attempt context, if any (only
// attempts with a per-try timeout have their own; others run on ctx).
func (r *Router) attempts(ctx context.Context, s *filter.Stream, tg *target, body *replayBody, pick PickContext, retry *retryState, pt *perTry) (result, context.CancelCauseFunc) {
	var prev result
	var prevCancel context.CancelCauseFunc
	discard := func(res result, cancel context.CancelCauseFunc) {
		if res.resp != nil {
			drain(res.resp.Body)
		}
		if cancel != nil {
			cancel(nil)
		}
	}
	for attempt := uint32(0); ; attempt++ {
		pick.Attempt = attempt
		res, cancel := r.try(ctx, s, tg, body, pick, pt)
		s.Record.Attempts = attempt + 1
		if res.info.Host != "" {
			s.Record.UpstreamHost = res.info.Host
			s.Record.UpstreamPeerIdentity = res.info.PeerIdentity
		}
		if attempt > 0 && errors.Is(res.err, ErrRetryOverflow) {
			// The retry budget is spent: the previous outcome stands.
			if cancel != nil {
				cancel(nil)
			}
			s.Record.Attempts = attempt
			return prev, prevCancel
		}
		if attempt > 0 {
			discard(prev, prevCancel)
		}
		prev, prevCancel = res, cancel
		if retry == nil || ctx.Err() != nil || !retry.retriable(res) {
			return res, cancel
		}
		if body != nil && (body.downstreamErr() != nil || !body.replayable()) {
			return res, cancel
		}
		if retry.remaining == 0 {
			s.SetFlags(filter.UpstreamRetryLimitExceeded)
			return res, cancel
		}
		retry.remaining--
		retry.retries++
		if retry.policy.PreviousHosts && res.info.Host != "" {
			pick.Previous = append(pick.Previous, res.info.Host)
		}
		if !retry.backoff(ctx) {
			return res, cancel
		}
	}
}

// perTry is the per_try_timeout of one request's attempts: each attempt
// with one runs on its own context, which one timer, re-armed for every
// attempt, cancels through the stored cancel func.
type perTry struct {
	d     time.Duration
	timer *time.Timer
	// wg counts the armed timer: stop waits for a timer function that
	// started, so that a late one never cancels the next attempt.
	wg     sync.WaitGroup
	mu     sync.Mutex
	cancel context.CancelCauseFunc
}

func newPerTry(d time.Duration) *perTry { return &perTry{d: d} }

// start arms the timer for the attempt whose context cancel ends.
func (p *perTry) start(cancel context.CancelCauseFunc) {
	p.mu.Lock()
	p.cancel = cancel
	p.mu.Unlock()
	p.wg.Add(1)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.d, p.fire)
	} else {
		p.timer.Reset(p.d)
	}
}

func (p *perTry) fire() {
	defer p.wg.Done()
	p.mu.Lock()
	cancel := p.cancel
	p.mu.Unlock()
	cancel(errPerTryTimeout)
}

// stop disarms the timer and reports whether it fired for this attempt.
func (p *perTry) stop() (fired bool) {
	if p.timer.Stop() {
		p.wg.Done()
		return false
	}
	p.wg.Wait()
	return true
}

// try is one attempt. Without a per-try timeout it runs on ctx and
// returns no cancel func.
func (r *Router) try(ctx context.Context, s *filter.Stream, tg *target, body *replayBody, pick PickContext, pt *perTry) (result, context.CancelCauseFunc) {
	var cancel context.CancelCauseFunc
	actx := ctx
	if pt != nil {
		actx, cancel = context.WithCancelCause(ctx)
	}
	// The first attempt's request is part of the target; a retry's is
	// its own (an earlier attempt's transport may still read its
	// request, URL and headers). The Upstream sets URL.Host to the host
	// it picks. No request carries ctx: the Upstream takes it apart.
	up := &tg.first
	if pick.Attempt > 0 {
		u := tg.url
		up = &http.Request{URL: &u}
	} else {
		up.URL = &tg.url
	}
	up.Method, up.Header, up.Host = s.Request.Method, tg.header, tg.authority
	setUpstreamProto(up, s.Request)
	countAttempts := s.Route.VirtualHost.IncludeRequestAttemptCount && !r.suppress
	if countAttempts {
		count := strconv.Itoa(int(pick.Attempt) + 1)
		if pick.Attempt > 0 {
			up.Header = tg.header.Clone()
			up.Header["X-Envoy-Attempt-Count"] = []string{count}
		} else {
			tg.set("X-Envoy-Attempt-Count", count)
		}
	}
	if body != nil {
		rb, ok := body.attempt()
		if !ok {
			return result{err: errBodyNotReplayable}, cancel
		}
		up.Body = rb
		up.ContentLength = s.Request.ContentLength
	}

	if pt != nil {
		pt.start(cancel)
	}
	resp, info, err := r.up.RoundTrip(actx, s.Cluster, pick, up)
	if pt != nil && pt.stop() {
		// The per-try timeout fired: the attempt is lost even if its
		// response headers raced in.
		if resp != nil {
			drain(resp.Body)
		}
		return result{info: info, err: errPerTryTimeout}, cancel
	}
	if err == nil && resp == nil {
		err = errors.New("upstream returned no response")
	}
	return result{resp: resp, info: info, err: err}, cancel
}

// setUpstreamProto marks req, an upstream request, with the protocol of
// the downstream request down: HTTP/2 when down is HTTP/2 or HTTP/3
// (Envoy sends HTTP/3 downstreams to use_downstream_protocol clusters over
// HTTP/2 unless they enable HTTP/3), HTTP/1.1 otherwise (1.0 included).
// The Upstream reads it for clusters with use_downstream_protocol; net/http
// transports ignore it, so it does not change what any pool speaks.
func setUpstreamProto(req, down *http.Request) {
	if down.ProtoMajor >= 2 {
		req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
		return
	}
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.1", 1, 1
}

// fail answers a request whose final attempt failed.
func (r *Router) fail(s *filter.Stream, f *route.Forward, ctx context.Context, body *replayBody, err error) {
	const reset = "upstream connect error or disconnect/reset before headers. reset reason: "
	reply := func(flag filter.Flags, status int, text, details string) {
		s.SetFlags(flag)
		s.Respond(filter.Reply{Status: status, Body: text, Details: details})
	}
	badBody := func() {
		s.SetFlags(filter.DownstreamProtocolError)
		s.Respond(filter.Reply{Status: http.StatusBadRequest, Body: "bad request body", Details: "downstream_protocol_error", Close: true})
	}
	switch {
	case s.ConnError != nil && s.ConnError() != nil:
		// A malformed request body (bad chunking) found by the framing
		// guard: net/http cancels the request's context too, but this is
		// the client's protocol error.
		badBody()
	case routeTimedOut(s, ctx):
		reply(filter.UpstreamRequestTimeout, http.StatusGatewayTimeout, "upstream request timeout", "upstream_response_timeout")
	case s.Context().Err() != nil:
		s.Fail()
	case body != nil && body.downstreamErr() != nil:
		badBody()
	case errors.Is(err, errPerTryTimeout):
		reply(filter.UpstreamRequestTimeout, http.StatusGatewayTimeout, "upstream request timeout", "upstream_per_try_timeout")
	case errors.Is(err, ErrNoCluster):
		reply(filter.NoClusterFound, f.ClusterNotFoundStatus, "", "cluster_not_found")
	case errors.Is(err, ErrNoHealthyUpstream):
		reply(filter.NoHealthyUpstream, http.StatusServiceUnavailable, "no healthy upstream", "no_healthy_upstream")
	case errors.Is(err, ErrOverflow):
		reply(filter.UpstreamOverflow, http.StatusServiceUnavailable, reset+"overflow", "upstream_reset_before_response_started{overflow}")
	case errors.Is(err, ErrConnectTimeout):
		reply(filter.UpstreamConnectionFailure, http.StatusServiceUnavailable, reset+"connection timeout", "upstream_reset_before_response_started{connection_timeout}")
	case errors.Is(err, ErrConnectFailure):
		reply(filter.UpstreamConnectionFailure, http.StatusServiceUnavailable, reset+"connection failure", "upstream_reset_before_response_started{connection_failure}")
	case errors.Is(err, ErrRefusedStream):
		reply(filter.UpstreamRemoteReset, http.StatusServiceUnavailable, reset+"remote refused stream reset", "upstream_reset_before_response_started{remote_refused_stream_reset}")
	case errors.Is(err, ErrConnectionTermination):
		reply(filter.UpstreamConnectionTermination, http.StatusServiceUnavailable, reset+"connection termination", "upstream_reset_before_response_started{connection_termination}")
	default:
		r.log.Debug("upstream request failed", "cluster", s.Cluster, "error", err)
		reply(filter.UpstreamRemoteReset, http.StatusServiceUnavailable, reset+"remote reset", "upstream_reset_before_response_started{remote_reset}")
	}
}

// respond streams the upstream response downstream and reports whether
// it was read to its end.
func (r *Router) respond(s *filter.Stream, ctx context.Context, resp *http.Response, body *replayBody) (complete bool) {
	defer resp.Body.Close()
	w := s.Writer()
	h := w.Header()
	// One array backs the values taken from the upstream's response (a
	// copy: the upstream may reuse its own, see releaseResponse) and
	// those of the router's two headers; sized for one value per field,
	// it grows for a response with repeated fields.
	vals := copyResponseHeader(h, resp.Header, make([]string, 0, len(resp.Header)+2))
	if !r.suppress {
		vals = append(vals, strconv.FormatInt(s.Record.UpstreamServiceTime.Milliseconds(), 10))
		n := len(vals)
		h["X-Envoy-Upstream-Service-Time"] = vals[n-1 : n : n]
		if s.Route.VirtualHost.IncludeAttemptCountInResponse {
			vals = append(vals, strconv.Itoa(int(s.Record.Attempts)))
			n = len(vals)
			h["X-Envoy-Attempt-Count"] = vals[n-1 : n : n]
		}
	}
	if s.Upgrade != "" {
		// An upgrade the upstream did not take: nothing pipelined
		// behind it on this connection may be read as a request (B8).
		h.Set("Connection", "close")
	}
	s.Record.Details = "via_upstream"
	w.WriteHeader(resp.StatusCode)

	flush := resp.ContentLength < 0 || s.GRPC || strings.HasPrefix(h1wire.Get(resp.Header, "Content-Type"), "text/event-stream")
	if err := r.copyBody(w, resp.Body, flush); err != nil {
		switch {
		case s.WriteError() != nil:
			s.SetFlags(filter.DownstreamConnectionTermination)
			return false
		case routeTimedOut(s, ctx):
			s.SetFlags(filter.UpstreamRequestTimeout)
			s.Record.Details = "upstream_response_timeout"
		case s.Context().Err() != nil:
			s.Fail()
			return false
		default:
			s.SetFlags(filter.UpstreamRemoteReset)
			s.Record.Details = "upstream_reset_after_response_started{remote_reset}"
		}
		s.Abort()
	}
	for k, vs := range resp.Trailer {
		h[http.TrailerPrefix+k] = vs
	}
	return true
}

// copyBody copies src to w through a pooled buffer, flushing after every
// write when the response streams. It returns the first read or write
// error other than io.EOF.
func (r *Router) copyBody(w http.ResponseWriter, src io.Reader, flush bool) error {
	bp := r.copyBufs.Get().(*[]byte)
	defer r.copyBufs.Put(bp)
	buf := *bp
	fl, _ := w.(http.Flusher)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if flush && fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// target computes the upstream authority, URL and headers.
func (r *Router) target(s *filter.Stream, rt *route.Route, f *route.Forward, timeout time.Duration) *target {
	tg := r.newTarget()
	tg.header, tg.spare = cloneHeader(s.Request.Header, addedFields, tg.vals[:], tg.header)
	h := tg.header
	delete(h, "Expect") // 100-continue is answered downstream by net/http
	// Route header mutations run after the connection manager sanitised
	// the request, so they may set what the client may not.
	rt.FinalizeRequestHeaders(filter.Header(h), s.Weighted)
	path, rewritten := rt.UpstreamPath(&s.Routing)
	if rewritten && !r.suppress {
		tg.set("X-Envoy-Original-Path", s.Routing.Path)
	}
	authority, changed := rt.UpstreamAuthority(&s.Routing, s.Weighted)
	if changed && f.AppendXForwardedHost {
		if _, ok := h["X-Forwarded-Host"]; ok {
			h.Add("X-Forwarded-Host", s.Routing.Authority)
		} else {
			tg.set("X-Forwarded-Host", s.Routing.Authority)
		}
	}
	if timeout > 0 && !r.suppress {
		tg.set("X-Envoy-Expected-Rq-Timeout-Ms", strconv.FormatInt(timeout.Milliseconds(), 10))
	}
	tg.authority = authority
	setUpstreamURL(&tg.url, authority, path)
	return tg
}

// routeTimeout is the route timeout, or the grpc-timeout header's when the
// route honours it (max_stream_duration's grpc_timeout_header_max).
func routeTimeout(s *filter.Stream, f *route.Forward) time.Duration {
	t := f.Timeout
	if s.GRPC && f.GRPCTimeoutHeaderMax.Set {
		if d, ok := parseGRPCTimeout(h1wire.Get(s.Request.Header, "Grpc-Timeout")); ok {
			if m := f.GRPCTimeoutHeaderMax.D; m > 0 && d > m {
				d = m
			}
			if off := f.GRPCTimeoutHeaderOffset; off.Set && d > off.D {
				d -= off.D
			}
			t = d
		}
	}
	return t
}

// routeTimedOut reports whether ctx, the stream's context or one derived
// from it, ended at the route timeout (and not the stream before it).
func routeTimedOut(s *filter.Stream, ctx context.Context) bool {
	if !errors.Is(context.Cause(ctx), errRouteTimeout) {
		return false
	}
	sc := s.Context()
	return sc.Err() == nil || errors.Is(context.Cause(sc), errRouteTimeout)
}

// drain reads a little of an abandoned response so its connection can be
// reused, then closes it.
func drain(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 4<<10)
	_ = rc.Close()
}

// routePick is the part of a PickContext that comes from the route and the
// downstream connection; callers add the hash their way.
func routePick(s *filter.Stream, f *route.Forward) PickContext {
	return PickContext{
		Priority:        f.Priority,
		MetadataMatch:   f.MetadataMatch,
		AutoHostRewrite: f.AutoHostRewrite,
		Source:          s.Conn.Source,
		Destination:     s.Conn.Destination,
		Restored:        s.Conn.Restored,
	}
}
