// Package http is the proxy's HTTP connection manager (Envoy's
// envoy.filters.network.http_connection_manager): it serves the HTTP/1.1
// and HTTP/2 connections of a listener's filter chain, sanitises and
// normalises each request, routes it and runs the HTTP filter chain,
// whose last filter, the router, forwards it upstream.
//
//	HttpConnectionManager ──Compile(h, Deps)──► *Manager (immutable; *Error names the field → NACK)
//	   settings · route slot (RDS name, or the inline table) · filter chain · h1Server · *http.Server
//
//	listener ──Serve(ctx, *listener.Conn)──┬─► h1Server (h1*.go): plaintext, TLS without h2
//	                                       │     one goroutine per connection, requests in order
//	                                       │     (the HTTP/2 preface is handed to net/http) ─┐
//	                                       └─► net/http (one-connection listener): TLS ALPN h2,
//	                                             plaintext with codec_type HTTP2 ─────────────┤
//	                                                                                         ▼
//	ServeHTTP (handler.go), in this order:
//	 1. limits      HTTP/1.0 (426 unless accept_http_10), Host (400), CONNECT (403),
//	                max_headers_count (431), underscores (400 or drop)
//	 2. path        normalize.go: fragment dropped, controls → 400, escaped slashes,
//	                normalize_path, merge_slashes → the path routed AND forwarded
//	 3. sanitise    headers.go: hop-by-hop and Connection-nominated headers (not the
//	                proxy's own), te≠trailers, h2c upgrade (refused: served as a plain
//	                request), x-envoy-*/x-trellis-*/x-forwarded-client-cert unless the
//	                peer is an authenticated mesh peer; the mTLS peer's XFCC entry
//	                (By=;Hash=;Subject=;URI=;DNS=, APPEND_FORWARD/SANITIZE_SET);
//	                then x-forwarded-for/-proto, x-request-id, via; authority
//	                port/dot stripping
//	 4. route       RouteSlot.Load() (atomic) ─► internal_only_headers ─► Table.Match
//	                ─► weighted cluster picked once; stream idle / request timers armed
//	 5. filters     http_filters in order (filter.Stream; per-route disable/enable):
//	                fault (DI, FI) ─► cors (preflight, response headers) ─► router
//	 6. record      filter.Record to Deps.Observer (route, cluster, code, flags,
//	                durations, bytes, upstream host) when the request ends
//
// Connections: Serve returns when the connection ends; when its context
// ends (listener drain over, manager closed) the connection is closed and
// requests in flight see a downstream disconnect (DC). Before that, the
// listener's drain calls Manager.Drain (listener.Drainer): HTTP/1
// responses then carry "Connection: close" and HTTP/2 connections get a
// GOAWAY, so clients move to another connection (drain.go). Mesh-internal
// headers are trusted only from an authenticated mesh peer (a TLS
// connection with a client certificate); every other downstream is a
// first hop and has them stripped (SECURITY B1).
//
// Filters are built by factories keyed by typed_config type (a
// filter.Registry value; Deps.Filters adds more), validated at Compile,
// wrapped once, and closed by Manager.Close (the router's mirrors).
//
// # The HTTP/1 codec
//
// HTTP/1 is served by the package's own codec rather than net/http's
// server: it is the proxy's hottest path, and net/http spends per request
// a goroutine and a read syscall (its background read), a
// net/textproto parse with its allocations, and a clone of the response
// headers. The codec (h1server.go, h1parse.go, h1body.go, h1writer.go):
//
//   - serves a connection on Serve's goroutine, requests in order
//     (pipelined ones included), reading through one pooled 4 KiB buffer
//     that grows for a larger head (up to max_request_headers_kb) for that
//     request only;
//   - parses the head in place — request line, then the header map built
//     directly with canonical keys, every string a substring of one copy
//     of the head — and rejects, with 400 (501 for an unknown transfer
//     coding, 505 for a version other than 1.x, 431 for a head over
//     max_request_headers_kb, 417 for an Expect other than 100-continue)
//     and a closed connection, before any handler runs: Content-Length
//     with Transfer-Encoding, Transfer-Encoding on HTTP/1.0, repeated or
//     non-chunked Transfer-Encoding, differing or non-decimal
//     Content-Length, obs-fold, a CR that does not end a line, invalid
//     header names (whitespace before the colon) and values (controls),
//     control bytes in the request target, a missing, repeated or invalid
//     Host on HTTP/1.1 (SECURITY B2–B4, B6); lines may end with a bare LF;
//   - reads bodies by Content-Length or chunked (chunk lines must end with
//     CRLF and chunk data with CRLF; trailers become Request.Trailer,
//     obs-fold refused); a framing error fails the body's Read and is the
//     connection's protocol error (filter.Stream.ConnError: the router
//     answers 400 and closes); "100 Continue" is sent when the handler
//     first reads a body that expects it;
//   - after the response, drains up to 256 KiB of unread body to keep the
//     connection (else closes it, half-closing first so the response is
//     not lost to a reset); Connection: close, HTTP/1.0 without
//     keep-alive, and a request with an Upgrade (other than h2c) or
//     CONNECT that was not taken over close the connection after the
//     response, so that nothing after them is read as a request (B8);
//   - bounds the wait for a request with idle_timeout (the first request
//     with request_headers_timeout, as net/http), and a head that does not
//     arrive in one read with request_headers_timeout (C6); a head that
//     arrives whole costs two deadline updates and no timer;
//   - writes responses through its own ResponseWriter (Flusher, Hijacker,
//     and http.ResponseController's deadlines and EnableFullDuplex): the
//     head is a snapshot at WriteHeader, serialised without cloning the
//     header map, and goes out with the body in one write when the body
//     fits the 16 KiB pooled buffer; framing is net/http's choice
//     (the handler's Content-Length; a computed one when the handler
//     returns with the body buffered; chunked on HTTP/1.1 otherwise, with
//     trailers declared by Trailer or set with http.TrailerPrefix; closing
//     on HTTP/1.0; no body for HEAD, 1xx, 204, 304), with a Date header;
//     unlike net/http it does not sniff a missing Content-Type;
//   - on a hijack (WebSocket upgrades) replays what it had read past the
//     head through the returned reader; on a handler panic
//     (http.ErrAbortHandler: the stream reset) closes the connection.
//
// Allocations per request: the request's stream, body counter, timers
// and the values of the proxy's own headers are one value (handler.go:
// exchange), pooled: a request that ends cleanly — no body, no panic,
// hijack or upgrade, and no timer, watcher or watch of its context that
// ran — hands it to a later one, since nothing can reach it any more (a
// goroutine still holding the stream's context holds a context of its
// own, allocated per stream, and sees it ended). An HTTP/1 connection's
// requests take turns using one *http.Request (a copy of one carrying
// the connection's context: no WithContext per request), URL, header map
// and value array, handed on once a request has ended with the
// connection kept (h1parse.go: headSpare). A path already canonical and
// an authority with nothing to strip are used as they are; the response
// header map and the write buffer are the connection's, reused from one
// request to the next (observers read the response headers only during
// Observe). The router pools its upstream request the same way (router
// package: target).
//
// Stream timeouts: a request gets one cancellable context of its own (the
// stream's, filter.Stream.SetContext; the request is not copied to carry
// it) and one timer, armed for the earliest of its deadlines: the stream
// idle timeout (activity is a lock-free timestamp; the timer re-arms
// itself when it fires early), the request timeout (cleared when the body
// is in) and the route timeout, which the router arms on the stream
// (filter.Deadlines) instead of deriving a context. Each cancels the
// stream's context with its own cause, read by filter.Stream.Fail and the
// router (handler.go: streamTimers). The stream's context also takes
// watchers (Watch/Unwatch), which the upstream HTTP/1 pool uses instead
// of a context.AfterFunc per request: the stream's own timeouts and end
// run them directly, the request's context ending through one AfterFunc
// on it, registered with the first watcher (handler.go: streamCtx).
//
// Downstream close while a request waits for its upstream: the
// connection is not read in the background for every request. A request
// that has been in flight for 50 ms and whose body is read gets one
// goroutine reading one byte: EOF or an error cancels the connection's
// context (every request context derives from it, so the request sees a
// downstream disconnect, DC); a byte is a pipelined request and is kept
// for the next read; when the request ends, a past read deadline stops
// the read. Requests shorter than that — nearly all of them — cost no
// goroutine and no syscall for it, and a client that leaves is seen
// within 50 ms. The connection's context is also cancelled when Serve's
// context ends (listener drain, manager closed), which closes the
// connection.
//
// # What net/http does for HTTP/2 and what this package adds
//
// net/http serves HTTP/2 and rejects, on its own: connection-specific and
// upper-case header names, misplaced or repeated pseudo-headers, invalid
// values (stream errors). It bounds HTTP/2 concurrency
// (MaxConcurrentStreams handlers per connection; streams reset early
// beyond four times that close the connection: rapid reset), header list
// size and CONTINUATION floods (MaxHeaderBytes), and queued control
// frames (PING/SETTINGS floods close the connection). It does not offer
// h2c upgrades.
//
// Added here for HTTP/2 (h2guard.go): every HTTP/2 connection, h2c and
// TLS alike (TLS connections are served as prior-knowledge HTTP/2 over
// the decrypted stream), is read through a frame guard that parses the
// frame headers as they pass and closes the connection, after a
// GOAWAY(ENHANCE_YOUR_CALM), at Envoy's flood limits from
// http2_protocol_options: consecutive empty DATA/HEADERS/CONTINUATION
// frames, PRIORITY frames per stream, WINDOW_UPDATE frames per DATA frame
// sent, PING/SETTINGS frames whose acknowledgement could not be written
// (SECURITY C4), and header blocks far over max_request_headers_kb (C2).
//
// Limits as metrics (stats.go): every refusal or close at a limit is
// counted through Deps.Stats under Envoy's statistic name: codec refusals
// and too many HTTP/1 headers downstream_cx_protocol_error, the request
// headers timeout downstream_rq_header_timeout, the HTTP/1 idle timeout
// downstream_cx_idle_timeout, stream idle and request timeouts
// downstream_rq_idle_timeout and downstream_rq_timeout, rapid reset
// downstream_rq_too_many_premature_resets, underscores
// http1./http2.requests_rejected_with_underscores_in_headers, header
// overflow http2.header_overflow, and the floods
// http2.inbound_empty_frames_flood, inbound_priority_frames_flood,
// inbound_window_update_frames_flood, outbound_control_flood. Not counted:
// net/http's own 431 for an HTTP/2 header list that decodes over the limit
// (an HPACK bomb), and its HTTP/2 idle timeout.
//
// Added here for both protocols: an empty Host (400); the header count
// limit (max_headers_count, 431, with a request record); path
// normalisation; header sanitising and the proxy headers; Envoy's
// response flags, local replies (gRPC trailers-only for gRPC requests)
// and timeouts.
//
// Settings read from the HttpConnectionManager: codec_type (AUTO, HTTP1,
// HTTP2), stat_prefix, rds / route_config, http_filters, normalize_path,
// merge_slashes, path_with_escaped_slashes_action, stream_idle_timeout
// (default 5 min; route idle_timeout overrides), request_timeout,
// request_headers_timeout (unset: 10 s, a Trellis default against
// slowloris; 0 disables), common_http_protocol_options (idle_timeout
// default 1 h, max_headers_count default 100,
// headers_with_underscores_action), max_request_headers_kb (default 60;
// on HTTP/1 the request line and header lines, exactly; net/http's HTTP/2
// allows 4 KiB of slack above it), use_remote_address,
// xff_num_trusted_hops, skip_xff_append, generate_request_id,
// preserve_external_request_id, always_set_request_id_in_response, via,
// upgrade_configs, server_name and server_header_transformation,
// strip_trailing_host_dot, strip_any_host_port, strip_matching_host_port,
// forward_client_cert_details, http_protocol_options.accept_http_10,
// http2_protocol_options (max_concurrent_streams, default 100; windows;
// keepalive; max_consecutive_inbound_frames_with_empty_payload, default 1;
// max_inbound_priority_frames_per_stream, default 100;
// max_inbound_window_update_frames_per_data_frame_sent, default 10;
// max_outbound_control_frames, default 1000). See Compile for what is
// rejected and what is ignored.
package http
