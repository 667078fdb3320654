// Package router is the envoy.filters.http.router HTTP filter, the end of
// every chain: it carries out the matched route's action (redirect, direct
// response, or forwarding upstream through the Upstream seam) with Envoy's
// timeouts, retries, hash policy, header rewriting, mirroring, gRPC
// trailers and WebSocket upgrades.
//
//	ServeStream ── no route / non-forwarding ─► 404 NR
//	     ├─ Redirect ─► 3xx Location          DirectResponse ─► status, body
//	     └─ Forward ─► cluster (NC) ─► upgrade? ─► upgrade.go (hijack, splice)
//	          headers: request headers (sanitised by the manager) + route header
//	          ops (after sanitising), path and authority rewrites, x-envoy-*
//	          body: replayBody (streams; keeps ≤ BufferLimit for retries/mirrors)
//	          attempts: Upstream.RoundTrip(ctx, cluster, PickContext, req)
//	             per-try timeout, retry_on (retry.go), jittered back-off,
//	             previous_hosts; URX when retries run out
//	             contexts: attempts run on the stream's context; the route
//	             timeout is a deadline armed on the stream's timers
//	             (Stream.Timeout: cause errRouteTimeout, UT 504), or a
//	             context of its own for a stream without them; only with a
//	             per-try timeout does each attempt get its own, canceled by
//	             one timer re-armed per attempt
//	          response: headers (hop-by-hop dropped, route ops, server header),
//	             body streamed with pooled buffers (flushed when streaming),
//	             trailers; mirrors dispatched (mirror.go)
//	          reuse: the upstream request, URL and header map (target) of a
//	             request forwarded in one attempt, without a body, and
//	             answered to the end go to a later request, and so does
//	             the upstream's response when its body offers Release
//	             (the pool's HTTP/1.1 responses); the downstream header
//	             values are copies for that reason (one array per
//	             response, shared with the router's own headers), since
//	             observers read them after the release; the request
//	             passed to the Upstream carries no context (ctx is its own)
//
// Errors map to Envoy's local replies and response flags: UF, UO, UH, UR,
// UC, NC, UT (504), DC, URX.
//
// Files by concern: router.go (actions, forwarding, responses), retry.go
// (retry_on, back-off), body.go (the bounded replay buffer), mirror.go
// (shadowing with bounded concurrency), upgrade.go (WebSocket), headers.go
// (hop-by-hop response headers, the upstream URL), upstream.go (the
// Upstream seam and its typed errors).
//
// Concurrency: one call of ServeStream per request, on the request's
// goroutine; the only goroutines the router adds are one per mirrored
// request (bounded by MaxMirrors, ended by Close), one per WebSocket
// (the second copy direction), and one per upgrade with a route timeout.
package router
