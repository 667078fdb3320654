// Package pool holds the HTTP connection pool of one upstream host (per
// protocol and routing priority), with Envoy's connection-pool semantics:
// circuit breakers, pending requests, per-connection request limits, idle
// and lifetime limits, and results fed to outlier detection.
//
//	RoundTrip(ctx, req, retry)
//	  retry? ── Retries breaker ──overflow──► RetryOverflow
//	  Requests breaker (max_requests) ──overflow──► Overflow (UO)
//	  acquire ─┬─ ready connection ───────────────────────────► Reserve a stream
//	           ├─ PendingRequests breaker ──overflow──► Overflow (UO)
//	           ├─ may open one: Connections breaker (or the pool's first),
//	           │  per-host max_connections ──► Dial (connect_timeout) ──► UF
//	           └─ else wait (FIFO) for a connection to come back, free a
//	              stream, close or be dialled; ctx ends the wait
//	  client.RoundTrip (ours: HTTP/1.1; net/http: HTTP/2) ──► status to outlier detection
//	  resp.Body: EOF / Close / read error ends the request
//	      ──► done: a draining connection (max_requests_per_connection,
//	          max_connection_duration, pool drain) closes once idle;
//	          others arm the idle timer
//
// Info tells where a request went: the host, whether the connection was
// reused, and the host's identity when Dial returned the connection as a
// *PeerConn (its transport socket verified the server certificate).
//
// # HTTP/1.1 is ours, HTTP/2 is net/http's ClientConn
//
// HTTP/2 connections (prior knowledge) are net/http ClientConns
// (Transport.NewClientConn, Go 1.26). golang.org/x/net/http2's ClientConn
// was the other candidate, but its NewClientConn is deprecated in favour
// of net/http's and becomes a wrapper of it in Go 1.27. net/http's
// Transport pool was never an option: it has no pending-request limit, no
// per-connection request limit, no lifetime limit, cannot keep a
// cluster-wide connection count, and hides which connection served a
// request.
//
// HTTP/1.1 connections are our own client (h1conn.go, h1write.go,
// h1read.go). net/http's ClientConn served them before, but cost a proxy
// more than it gave: two goroutines per connection (readLoop, writeLoop)
// with channel handoffs for every request, its own per-request state,
// header cloning, a request copy (WithContext, a default User-Agent to
// suppress) and net/textproto's allocations per header value. Ours runs a
// request in the caller's goroutine:
//
//	Reserve: a connection back from idle is first peeked at without
//	  blocking (MSG_PEEK|MSG_DONTWAIT on Linux sockets; a transport
//	  socket's connection, TLS, is not): a close or stray bytes from the
//	  peer while idle closes it and the pool takes another, since no
//	  goroutine watches idle connections
//	write: request line and fields from a per-connection buffer, checked
//	  first (CR, LF, NUL or other controls in a method, target, Host, name
//	  or value fail the request before anything is written:
//	  ErrInvalidRequest, Reset, not held against the host), with the
//	  body when its length is known and at most 16 KiB: one write; larger
//	  and streaming (chunked) bodies are written by a goroutine while the
//	  response is read, so that an early response (413, 5xx) is still
//	  read; Expect gets no special treatment (the router answers
//	  100-continue downstream and never forwards it)
//	read: heads from the connection's bufio.Reader, without net/textproto
//	  (one string per head, field values are substrings of it, canonical
//	  keys); 1xx heads other than 101 skipped; heads bounded to 64 KiB
//	  and 100 fields; bodies by Content-Length, chunked (trailers into
//	  resp.Trailer), until close, or none (HEAD, 1xx, 204, 304); both
//	  Transfer-Encoding and Content-Length, other codings, obs-fold and
//	  bad chunking are malformed (ErrMalformedResponse, failed as Reset:
//	  UR), a connection ending early is a connection termination (UC)
//	101: the raw connection is the caller's (resp.Body, an
//	  io.ReadWriteCloser), until the caller closes it
//	end: reused only after the body's EOF (or a Close when the rest is
//	  already buffered), keep-alive on both sides (Connection: close, or
//	  HTTP/1.0 without keep-alive, closes it), and the body writer done
//	  within 50 ms; else closed
//	ctx: watched from the request's start to the body's end — through
//	  the context's own Watch/Unwatch when it has them (the HTTP connection
//	  manager's stream context: no allocation per request), else
//	  context.AfterFunc; its end closes the connection and the request
//	  fails with its cause (Timeout or Canceled)
//
// A response of our client is one allocation with its body, the pool's
// body wrapper and the values of a head of up to 8 fields
// (h1read.go: h1Response); the header map and the head's string are the
// others. A caller done with a response whose body has ended (and that
// has no trailers) may hand it back with the body's Release (body.go):
// the struct, its header map and its value array then serve a later
// response of the pool, so that only the head's string is allocated per
// response. Release takes the caller's word that nothing of the response
// is used any more — header value slices included (copy them), the
// strings excepted. Request trailers are not sent.
//
// # State
//
// A connection's client (conn.go: client) reports its capacity and
// closure through a state hook: ours when a response ended and the
// connection can be reused, or when it closed; net/http's as HTTP/2
// streams end. The pool mirrors it (conn.available) and treats the
// client's Reserve as the truth: a mirror that was too optimistic costs
// one failed Reserve and a look at the next connection. Connection limits
// are held by the dialled net.Conn and released by its first Close,
// whoever closes it. Every field of the pool and its connections is
// guarded by Pool.mu, which is always taken last (never while calling
// into a client).
//
// # Not here
//
// TLS (the transport socket is the Dial function's; ALPN needs the
// "https" scheme and DialTLSContext — the seam is noted in New), HTTP/3,
// Expect: 100-continue (the router answers it downstream), and
// close_connections_on_host_health_failure.
package pool
