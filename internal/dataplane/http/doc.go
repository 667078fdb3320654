// Package http is the proxy's HTTP connection manager (Envoy's
// envoy.filters.network.http_connection_manager): it serves the HTTP/1.1
// and HTTP/2 connections of a listener's filter chain, sanitises and
// normalises each request, routes it and runs the HTTP filter chain,
// whose last filter, the router, forwards it upstream.
//
//	HttpConnectionManager ──Compile(h, Deps)──► *Manager (immutable; *Error names the field → NACK)
//	   settings · route slot (RDS name, or the inline table) · filter chain · one *http.Server
//
//	listener ──Serve(ctx, *listener.Conn)──► one-connection listener ──► http.Server (net/http)
//	   plaintext: h1guard (HTTP/1 framing, smuggling) ─► HTTP/1.1 │ HTTP/2 prior knowledge
//	   *tls.Conn with ALPN h2 ─► HTTP/2 (a later TLS transport hands these)
//	                                    │ one goroutine per connection, one per request (net/http's)
//	                                    ▼
//	ServeHTTP (handler.go), in this order:
//	 1. limits      HTTP/1.0 (426 unless accept_http_10), Host (400), CONNECT (403),
//	                max_headers_count (431), underscores (400 or drop)
//	 2. path        normalize.go: fragment dropped, controls → 400, escaped slashes,
//	                normalize_path, merge_slashes → the path routed AND forwarded
//	 3. sanitise    headers.go: hop-by-hop and Connection-nominated headers (not the
//	                proxy's own), te≠trailers, h2c upgrade (refused: served as a plain
//	                request), x-envoy-*/x-trellis-*/x-forwarded-client-cert unless the
//	                peer is an authenticated mesh peer; then x-forwarded-for/-proto,
//	                x-request-id, via; authority port/dot stripping
//	 4. route       RouteSlot.Load() (atomic) ─► internal_only_headers ─► Table.Match
//	                ─► weighted cluster picked once; stream idle / request timers armed
//	 5. filters     http_filters in order (filter.Stream; per-route disable/enable):
//	                fault (DI, FI) ─► cors (preflight, response headers) ─► router
//	 6. record      filter.Record to Deps.Observer (route, cluster, code, flags,
//	                durations, bytes, upstream host) when the request ends
//
// Connections: Serve returns when the connection ends; when its context
// ends (listener drain over, manager closed) the connection is closed and
// requests in flight see a downstream disconnect (DC). Mesh-internal
// headers are trusted only from an authenticated mesh peer (a TLS
// connection with a client certificate); every other downstream is a
// first hop and has them stripped (SECURITY B1).
//
// Filters are built by factories keyed by typed_config type (a
// filter.Registry value; Deps.Filters adds more), validated at Compile,
// wrapped once, and closed by Manager.Close (the router's mirrors).
//
// # What net/http does and what this package adds
//
// net/http parses both protocols and rejects, on its own: a missing or
// repeated Host (HTTP/1.1), invalid header names (spaces included) and
// values (CR, LF, NUL), malformed request lines and URIs (NUL, CR, LF),
// unsupported or repeated Transfer-Encoding (501), differing
// Content-Length values, bare LF in chunk lines, oversized heads (431),
// and on HTTP/2 connection-specific and upper-case header names,
// misplaced or repeated pseudo-headers (stream errors). It bounds HTTP/2
// concurrency (MaxConcurrentStreams handlers per connection; streams reset
// early beyond four times that close the connection: rapid reset), header
// list size and CONTINUATION floods (MaxHeaderBytes), and queued control
// frames (PING/SETTINGS floods close the connection). It does not offer
// h2c upgrades.
//
// Added here: h1guard rejects what net/http tolerates on HTTP/1 —
// Content-Length with Transfer-Encoding (net/http drops the length),
// Transfer-Encoding on HTTP/1.0, obs-fold lines — with 400 and a closed
// connection, before the request reaches a handler; an empty Host (400);
// the header count limit; path normalisation; header sanitising and the
// proxy headers; Envoy's response flags, local replies (gRPC
// trailers-only for gRPC requests) and timeouts.
//
// Settings read from the HttpConnectionManager: codec_type (AUTO, HTTP1,
// HTTP2), stat_prefix, rds / route_config, http_filters, normalize_path,
// merge_slashes, path_with_escaped_slashes_action, stream_idle_timeout
// (default 5 min; route idle_timeout overrides), request_timeout,
// request_headers_timeout (unset: 10 s, a Trellis default against
// slowloris; 0 disables), common_http_protocol_options (idle_timeout
// default 1 h, max_headers_count default 100,
// headers_with_underscores_action), max_request_headers_kb (default 60;
// net/http allows 4 KiB of slack above it), use_remote_address,
// xff_num_trusted_hops, skip_xff_append, generate_request_id,
// preserve_external_request_id, always_set_request_id_in_response, via,
// upgrade_configs, server_name and server_header_transformation,
// strip_trailing_host_dot, strip_any_host_port, strip_matching_host_port,
// forward_client_cert_details, http_protocol_options.accept_http_10,
// http2_protocol_options (max_concurrent_streams, default 100; windows;
// keepalive). See Compile for what is rejected and what is ignored.
package http
