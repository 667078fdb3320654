package filter

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
)

// Causes the connection manager cancels a stream's context with; the
// router and filters read them with context.Cause (see Fail).
var (
	ErrStreamIdleTimeout = errors.New("stream idle timeout")
	ErrRequestTimeout    = errors.New("request timeout")
)

// Stream is one request as the filter chain sees it. The connection
// manager builds it once the request is sanitised, normalised and routed;
// it belongs to the request's goroutine and is not retained once
// ServeStream returns.
type Stream struct {
	// Request is the downstream request. Its Header is sanitised
	// (hop-by-hop and untrusted mesh-internal headers removed) and carries
	// the proxy's x-forwarded-* and x-request-id; filters may edit it.
	// Its URL and RequestURI are as received: the normalised path and
	// authority are in Routing.
	Request *http.Request
	// Routing is the request as routing reads it: normalised :path
	// (with query) and :authority, the connection's scheme, header access
	// by lower-case name over Request.Header, and the request's random
	// value.
	Routing route.Request
	// Route is the matched route, nil when none matched.
	Route *route.Route
	// Cluster is the upstream cluster of a forwarding route, and Weighted
	// the weighted cluster entry it came from (nil unless weighted).
	// ClusterOK is false when a cluster_header was absent.
	Cluster   string
	ClusterOK bool
	Weighted  *route.WeightedCluster

	// GRPC marks a gRPC request (content-type application/grpc...).
	GRPC bool
	// Upgrade is the lower-cased upgrade type an HTTP/1.1 request asks for
	// ("websocket"; never "h2c", which the manager refuses), "" for none.
	// UpgradeAllowed is the connection manager's upgrade_configs verdict;
	// a route's upgrade_configs entry overrides it.
	Upgrade        string
	UpgradeAllowed bool
	// Conn is the downstream connection.
	Conn *listener.Conn
	// ConnError reports a protocol error found on the downstream
	// connection (the HTTP/1 framing guard), nil when none; nil func when
	// the connection has no guard.
	ConnError func() error
	// BufferLimit bounds what the proxy buffers of a request body for
	// retries and mirrors (per_request_buffer_limit_bytes).
	BufferLimit int

	// Record collects the request's telemetry.
	Record Record
	// Metadata is the request's dynamic metadata by filter name, filled by
	// filters (the JWT filter puts the verified token's payload under
	// "envoy.filters.http.jwt_authn" → "payload") and read by later ones
	// (RBAC metadata matchers). Values are JSON-like: string, float64,
	// bool, nil, []any, map[string]any. Nil until a filter sets it.
	Metadata map[string]map[string]any

	ctx       context.Context // nil: Request's
	deadlines Deadlines
	w         *responseWriter
	hooks     []func(status int, h http.Header)
	random    func() uint64
	touch     Activity

	// rw and hookBuf back w and hooks, so that a stream is one
	// allocation for the common case (up to len(hookBuf) hooks).
	rw      responseWriter
	hookBuf [4]func(status int, h http.Header)
}

// NewStream starts a stream over w and r. random draws the stream's
// random values (nil: never random, always 0).
func NewStream(w http.ResponseWriter, r *http.Request, random func() uint64) *Stream {
	s := &Stream{}
	s.Init(w, r, random)
	return s
}

// Init starts a stream over w and r in s, a zero Stream (NewStream
// without the allocation, for a Stream inside a larger value). s must
// not be copied afterwards.
func (s *Stream) Init(w http.ResponseWriter, r *http.Request, random func() uint64) {
	s.Request, s.random = r, random
	s.rw = responseWriter{ResponseWriter: w, s: s}
	s.w = &s.rw
	s.hooks = s.hookBuf[:0]
}

// HasBody reports whether r may carry body bytes. A body declared empty
// (ContentLength 0) is none: HTTP/2 gives every request a body object,
// and neither the connection manager nor the router treats one without
// bytes as a body.
func HasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// Context is the stream's context: it ends when the client goes away,
// when the listener drains, or with one of the manager's timeouts (the
// route timeout the router arms with Timeout included). It is the
// request's context unless the connection manager gave the stream its
// own (SetContext): filters read it here, not from Request.
func (s *Stream) Context() context.Context {
	if s.ctx != nil {
		return s.ctx
	}
	return s.Request.Context()
}

// SetContext makes ctx, derived from the request's context, the
// stream's (without copying the request to carry it).
func (s *Stream) SetContext(ctx context.Context) { s.ctx = ctx }

// Deadlines are the connection manager's stream timers, which a filter
// (the router's route timeout) may add a deadline to instead of deriving
// a context of its own: one context and one timer per stream.
type Deadlines interface {
	// ArmTimeout cancels the stream's context with cause once d has
	// passed, unless DisarmTimeout comes first. A later call replaces
	// the deadline.
	ArmTimeout(d time.Duration, cause error)
	// DisarmTimeout removes the deadline; once it returns, the deadline
	// cancels nothing.
	DisarmTimeout()
}

// SetDeadlines installs the stream timers Timeout uses.
func (s *Stream) SetDeadlines(d Deadlines) { s.deadlines = d }

// Timeout arms a deadline on the stream's context (Deadlines.ArmTimeout)
// and reports whether it could: false when the stream has no timers (a
// stream built without the connection manager), and the caller derives
// a context of its own. StopTimeout disarms it.
func (s *Stream) Timeout(d time.Duration, cause error) bool {
	if s.deadlines == nil {
		return false
	}
	s.deadlines.ArmTimeout(d, cause)
	return true
}

// StopTimeout disarms the deadline armed by Timeout.
func (s *Stream) StopTimeout() {
	if s.deadlines != nil {
		s.deadlines.DisarmTimeout()
	}
}

// Writer is the response writer filters and the router write through. It
// runs the response-header hooks before the status line goes out and
// counts the body bytes. It supports http.ResponseController (Flush,
// Hijack, EnableFullDuplex) through Unwrap.
func (s *Stream) Writer() http.ResponseWriter { return s.w }

// Rand returns a fresh random value.
func (s *Stream) Rand() uint64 {
	if s.random == nil {
		return 0
	}
	return s.random()
}

// OnResponseHeaders registers fn to edit the response headers just before
// they are sent (upstream responses and local replies alike). Hooks run in
// reverse order of registration, as Envoy's encoder filters: the filter
// nearest the router edits first.
func (s *Stream) OnResponseHeaders(fn func(status int, h http.Header)) {
	s.hooks = append(s.hooks, fn)
}

// OnRouteResponseHeaders registers, as OnResponseHeaders would, the
// matched route's response header operations (those of Weighted
// first, then the route's: route.Route.FinalizeResponseHeaders), without
// allocating a function for them. Route must be set.
func (s *Stream) OnRouteResponseHeaders() {
	s.hooks = append(s.hooks, nil) // nil: the route's operations
}

// runHooks runs the response-header hooks, last registered first.
func (s *Stream) runHooks(code int, h http.Header) {
	for i := len(s.hooks) - 1; i >= 0; i-- {
		if f := s.hooks[i]; f != nil {
			f(code, h)
		} else {
			s.Route.FinalizeResponseHeaders(Header(h), s.Weighted)
		}
	}
}

// Activity is told of a stream's activity (the connection manager's
// stream idle timer). It is an interface, not a func, so that the timer
// registers without allocating a closure.
type Activity interface{ Touch() }

// OnActivity registers a to be told whenever response bytes are written.
// One Activity; the last wins.
func (s *Stream) OnActivity(a Activity) { s.touch = a }

// HeadersSent reports whether the response status line has gone out (the
// stream can then only be finished or reset, not answered).
func (s *Stream) HeadersSent() bool { return s.w.wrote }

// Hijacked reports whether the connection was taken over (upgrade).
func (s *Stream) Hijacked() bool { return s.w.hijacked }

// SetFlags adds response flags to the record.
func (s *Stream) SetFlags(f Flags) { s.Record.Flags |= f }

// Reply is a response the proxy makes itself (Envoy's sendLocalReply).
type Reply struct {
	Status int
	Body   string
	// GRPCStatus is the grpc-status of the reply to a gRPC request when
	// GRPCStatusSet; otherwise it is derived from Status (GRPCStatusFor).
	GRPCStatus    int
	GRPCStatusSet bool
	// Header holds extra response headers (Location, CORS ...).
	Header http.Header
	// Details is the response code details for telemetry.
	Details string
	// Close asks to close an HTTP/1 downstream connection after the
	// reply (HTTP/2 streams are independent; nothing is closed).
	Close bool
}

// Respond sends a local reply. A gRPC request gets a trailers-only
// response (HTTP 200, grpc-status, grpc-message), as Envoy's local replies.
// Once the response has started, the stream is reset instead.
func (s *Stream) Respond(r Reply) {
	if r.Details != "" {
		s.Record.Details = r.Details
	}
	if s.w.hijacked {
		return
	}
	if s.w.wrote {
		s.Abort()
	}
	h := s.w.Header()
	for k, vs := range r.Header {
		h[k] = vs
	}
	if r.Close && s.Request.ProtoMajor == 1 {
		// (On HTTP/2 net/http would take "Connection: close" as a
		// GOAWAY for every stream of the connection.)
		h.Set("Connection", "close")
	}
	if s.GRPC {
		code := r.GRPCStatus
		if !r.GRPCStatusSet {
			code = GRPCStatusFor(r.Status)
		}
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(code))
		if r.Body != "" {
			h.Set("Grpc-Message", grpcMessage(r.Body))
		}
		s.w.WriteHeader(http.StatusOK)
		return
	}
	if r.Body != "" {
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", strconv.Itoa(len(r.Body)))
	} else if r.Status != http.StatusNoContent && r.Status != http.StatusNotModified && r.Status >= 200 {
		h.Set("Content-Length", "0")
	}
	s.w.WriteHeader(r.Status)
	if r.Body != "" && s.Request.Method != http.MethodHead {
		_, _ = s.w.Write([]byte(r.Body))
	}
}

// Abort resets the stream: HTTP/2 sends RST_STREAM, HTTP/1 closes the
// connection. It does not return (it panics with http.ErrAbortHandler,
// which net/http recovers silently).
func (s *Stream) Abort() {
	panic(http.ErrAbortHandler)
}

// Fail ends a stream whose context is done, by its cause: the manager's
// stream idle timeout (408, SI) and request timeout (408), else the client
// went away or the listener drained (DC; nothing is sent).
func (s *Stream) Fail() {
	switch cause := context.Cause(s.Context()); {
	case errors.Is(cause, ErrStreamIdleTimeout):
		s.SetFlags(StreamIdleTimeout)
		s.Respond(Reply{Status: http.StatusRequestTimeout, Body: "stream timeout", Details: "stream_idle_timeout"})
	case errors.Is(cause, ErrRequestTimeout):
		s.Respond(Reply{Status: http.StatusRequestTimeout, Body: "request timeout", Details: "request_overall_timeout"})
	default:
		s.SetFlags(DownstreamConnectionTermination)
		if s.Record.Details == "" {
			s.Record.Details = "downstream_remote_disconnect"
		}
	}
}

// responseWriter runs the response hooks and counts what is written.
type responseWriter struct {
	http.ResponseWriter
	s        *Stream
	wrote    bool
	hijacked bool
	// werr is the first downstream write error.
	werr error
}

// WriteHeader runs the hooks once, before a final (non-1xx) status.
func (w *responseWriter) WriteHeader(code int) {
	if w.wrote || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wrote = true
	w.s.runHooks(code, w.ResponseWriter.Header())
	w.s.Record.ResponseCode = code
	w.ResponseWriter.WriteHeader(code)
}

// Write writes body bytes, sending a 200 first if nothing was sent.
func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.s.Record.BytesSent += int64(n)
	if w.s.touch != nil && n > 0 {
		w.s.touch.Touch()
	}
	if err != nil && w.werr == nil {
		w.werr = err
	}
	return n, err
}

// Flush sends buffered data to the client.
func (w *responseWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack takes over the connection (HTTP/1 upgrades).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// WriteError reports the first error writing to the client, if any.
func (s *Stream) WriteError() error { return s.w.werr }

// Switched runs the response hooks on the headers h of a 101 response
// that the upgrade path writes itself on the hijacked connection, and
// records the 101.
func (s *Stream) Switched(h http.Header) {
	s.w.wrote = true
	s.runHooks(http.StatusSwitchingProtocols, h)
	s.Record.ResponseCode = http.StatusSwitchingProtocols
}
