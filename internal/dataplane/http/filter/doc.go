// Package filter is the HTTP filter API of the connection manager: the
// per-request Stream that filters see, the Filter/Factory lifecycle, the
// response flags and the telemetry Record.
//
//	Factory.Build(name, typed_config) ─► Filter        at Compile: decode, validate (NACK on error)
//	Filter.Wrap(next) ─► Handler                       once per connection manager
//	Handler.ServeStream(*Stream)                       per request, on its goroutine
//	io.Closer (optional)                               when the manager is replaced
//
// A filter either answers the stream (Stream.Respond: a local reply, gRPC
// trailers-only for gRPC requests) or calls next, after registering
// response-header hooks if it needs to edit the response
// (Stream.OnResponseHeaders; hooks run nearest-the-router first, as
// Envoy's encoder filters). Filters read the request through
// Stream.Request (sanitised headers) and Stream.Routing (normalised path
// and authority as routing saw them), the matched route through
// Stream.Route (and Route.Filter for their typed_per_filter_config), and
// record what they did in Stream.Record (response flags and details).
// The stream's context is Stream.Context (not Request.Context: the
// connection manager gives the stream its own without copying the
// request); a filter that needs a deadline on the whole stream arms it
// with Stream.Timeout, on the manager's timers (Deadlines).
//
// A Stream belongs to its request's goroutine; filters must not keep it
// or use it from other goroutines, except that the request body may be
// read by the goroutine that sends it upstream.
package filter
