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
//	  ClientConn.RoundTrip ──► status to outlier detection
//	  resp.Body: EOF / Close / read error ends the request
//	      ──► done: a draining connection (max_requests_per_connection,
//	          max_connection_duration, pool drain) closes once idle;
//	          others arm the idle timer
//
// # Why net/http's ClientConn
//
// Connections are net/http ClientConns (Transport.NewClientConn, Go
// 1.26), for HTTP/1.1 and for HTTP/2 with prior knowledge alike; the pool
// around them is ours. golang.org/x/net/http2's ClientConn was the other
// candidate for HTTP/2, but its NewClientConn is deprecated in favour of
// net/http's and becomes a wrapper of it in Go 1.27. For HTTP/1.1 a
// ClientConn brings what a small own client would have had to get right:
// request framing that rejects header injection, writing the request body
// while reading an early response, 1xx responses, 101 upgrades handed to
// the caller, trailers, and reading to the end of a response before the
// connection is reused. net/http.Transport's own pool was not an option:
// it has no pending-request limit, no per-connection request limit, no
// lifetime limit, cannot keep a cluster-wide connection count, and hides
// which connection served a request.
//
// The price: net/http runs two goroutines per HTTP/1.1 connection (one per
// HTTP/2 connection), allocates a few objects per request internally, and
// adds a User-Agent to requests without one (the pool sends an empty one,
// which net/http omits, through a shallow copy of the request) and
// Accept-Encoding (the Transport has compression disabled). The pool itself
// adds one allocation per request (the body wrapper).
//
// # State
//
// net/http reports a connection's capacity and closure through the
// ClientConn state hook; the pool mirrors it (conn.available) and treats
// ClientConn.Reserve as the truth: a mirror that was too optimistic costs
// one failed Reserve and a look at the next connection. Connection limits
// are held by the dialled net.Conn and released by its first Close,
// whoever closes it. Every field of the pool and its connections is
// guarded by Pool.mu, which is always taken last (never while calling into
// net/http).
//
// # Not here
//
// TLS (the transport socket is the Dial function's; ALPN needs the
// "https" scheme and DialTLSContext — the seam is noted in New), HTTP/3,
// Expect: 100-continue (the router answers it downstream), and
// close_connections_on_host_health_failure.
package pool
