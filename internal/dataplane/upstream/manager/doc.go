// Package manager is the proxy's cluster manager (Envoy's
// ClusterManager): it holds one upstream.Instance per CDS cluster, feeds
// it EDS and DNS updates, runs its timers, owns the connection pools of
// its hosts, and serves the two data paths — the HTTP router
// (router.Upstream: RoundTrip) and the tcp proxy (tcp.Upstream: Dial).
//
//	xDS client ──ApplyClusters(map)──► compile (upstream.Compile) ──error──► per-resource NACK,
//	   │                                  │                                 previous version kept
//	   │                                  ├ unchanged (proto.Equal): kept
//	   │                                  ├ settings-only change: same Instance, new pools
//	   │                                  ├ otherwise: new Instance (+ last CLA of its EDS name)
//	   │                                  └ absent: retired — NC for new requests, pools drain
//	   └─ApplyEndpoints(map)─► upstream.Endpoints ─► Instance.Update ─► pools of hosts that left drain
//
//	Run(ctx): per cluster one goroutine, if needed:
//	   outlier interval ─► Instance.Tick     DNS refresh ─► Instance.Update
//	   ORIGINAL_DST cleanup_interval ─► forget unused destination hosts
//	   on return: every pool closed
//
//	RoundTrip(ctx, cluster, pick, req)                     Dial(ctx, cluster, *listener.Conn)
//	   cluster ─NC─┐                                          cluster ─NC─┐
//	   Instance.Pick / original destination ─UH─┤             pick / original destination ─UH─┤
//	   host's pool [protocol][priority]         │             max_connections, per-host ─UO─┤
//	     pool.Pool.RoundTrip ─UO UF UR UC UT────┤             dial (bind, keepalive, transport
//	                                            ▼               socket) within connect_timeout ─UF─┤
//	                                         *Error ◄──────────────────────────────────────────────┘
//	   results ─► outlier detection (status codes; local-origin connect failures, timeouts, resets)
//
// # Connections
//
// Each host has a pool per protocol and routing priority (package pool),
// created on first use, taking the cluster's circuit breakers of that
// priority: max_connections (cluster-wide, counted by every pool and by TCP
// connections), max_pending_requests, max_requests, max_retries (retries,
// pick.Attempt > 0, hold one until done), per-host max_connections, and
// the HTTP protocol options: max_requests_per_connection, idle_timeout,
// max_connection_duration, HTTP/2 max_concurrent_streams, windows and
// keepalive. HTTP/2 is spoken with prior knowledge (h2c) when the cluster
// says explicit HTTP/2, or use_downstream_protocol and the request is
// HTTP/2 (req.ProtoMajor == 2: the router sets it from the downstream
// request, HTTP/2 for HTTP/2 and HTTP/3 downstreams).
//
// # Transport sockets
//
// The transport socket is chosen per endpoint as Envoy does
// (transport_socket_matches against the endpoint's
// envoy.transport_socket_match metadata, else transport_socket) and built
// by Config.Transports. The default, PlaintextOnly, knows raw_buffer only:
// an endpoint that needs TLS — Istio's auto mTLS picks tlsMode-istio for
// endpoints with a sidecar, ISTIO_MUTUAL and SIMPLE DestinationRules set
// the cluster's socket — fails to connect (UF, "transport socket ... is not
// implemented yet; refusing to fall back to plaintext") without counting
// against the host's outlier detection, while tlsMode-disabled endpoints
// of the same cluster get plaintext. A TLS Transports slots in without
// changes here (HTTP/2 over TLS then needs ALPN, see package pool).
//
// # Not supported
//
// Keeping outlier state and host counters across a change that needs a new
// Instance (circuit breakers, load balancing, outlier settings): the new
// Instance starts fresh (upstream.Instance cannot adopt hosts). DNS TTLs
// (respect_dns_ttl), HTTP/3 upstreams (rejected), envoy_internal_address
// endpoints (connect failure), subset load balancing (rejected by Compile;
// metadata_match ignored), close_connections_on_host_health_failure,
// drop_overload of assignments. A pending request waiting on a
// cluster-wide max_connections is woken by its own pool's events only, not
// by another host's connection closing. A request whose context is
// canceled counts as a timeout for outlier detection only when its cause
// says so (context.DeadlineExceeded, or an error with Timeout() true): the
// router's per-try timeout cancels with a plain error today, so per-try
// timeouts are not held against hosts.
package manager
