// Package manager is the proxy's cluster manager (Envoy's
// ClusterManager): it holds one upstream.Instance per CDS cluster, feeds
// it EDS and DNS updates, runs its timers, owns the connection pools of
// its hosts, and serves the two data paths — the HTTP router
// (router.Upstream: RoundTrip) and the tcp proxy (tcp.Upstream: Dial).
//
//	xDS client ──ApplyClusterSet(xdsset.Set)──► compile (upstream.Compile) ──error──► per-resource NACK,
//	   │                                  │                                 previous version kept
//	   │                                  ├ same version: kept, not decoded
//	   │                                  ├ new version, same content (SHA-256 of the
//	   │                                  │   deterministic serialization): kept
//	   │                                  ├ settings-only change: same Instance, new pools
//	   │                                  ├ otherwise: new Instance (+ last CLA of its EDS name)
//	   │                                  └ absent: retired — NC for new requests, pools drain
//	   └─ApplyEndpointSet(xdsset.Set)─► (same version: skipped) Interner.Endpoints ─► Instance.Update
//	                                    ─► pools of hosts that left drain
//
//	The manager keeps compiled clusters and endpoint sets with the versions (and
//	fingerprints) they came from, never the messages; ApplyClusters and
//	ApplyEndpoints take maps of messages (tests, in-process configuration).
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
//	                                                            (TCP I/O as raw system calls: sockio)
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
// by Config.Transports. TLSTransports(store) provides raw_buffer and
// envoy.transport_sockets.tls (package tlssock: SNI, ALPN, client
// certificate and trust bundle from the secrets.Store per handshake,
// server verification with match_typed_subject_alt_names — secure naming —
// or none without a validation context, protocol versions, ciphers); a TLS
// context with an unsupported field rejects the cluster. A failed
// handshake is a connect failure (UF) whose error carries the reason
// (san_mismatch, unknown_ca, ...), held against the host as a local-origin
// connect failure, as Envoy does. Istio's ALPN override: HTTP connections
// on sockets that offer "istio" (ISTIO_MUTUAL) offer istio-http/1.1,
// istio, http/1.1 (HTTP/2: istio-h2, istio, h2) unless the cluster's istio
// metadata says alpn_override "false"; TCP connections keep the
// configured protocols. HTTP/2 pools speak HTTP/2 over the TLS connection
// as they do over plaintext (prior knowledge, as Envoy with explicit
// HTTP/2; the generated cluster offers h2).
//
// A TLS socket with a validation context reports the server's verified
// SPIFFE ID (the first URI SAN of its certificate): HTTP requests carry it
// in router.Info.PeerIdentity (the pool gets it as a *pool.PeerConn) and
// TCP connections from Dial report it as a tcp.PeerIdentifier, for the
// source reporter's destination_principal. Plaintext and unverified TLS
// report none.
//
// The default, PlaintextOnly, knows raw_buffer only: an endpoint that
// needs TLS fails to connect (UF, "transport socket ... is not implemented
// yet; refusing to fall back to plaintext") without counting against the
// host's outlier detection, while tlsMode-disabled endpoints of the same
// cluster get plaintext.
//
// # Not supported
//
// Keeping outlier state and host counters across a change that needs a new
// Instance (circuit breakers, load balancing, outlier settings): the new
// Instance starts fresh (upstream.Instance cannot adopt hosts). DNS TTLs
// (respect_dns_ttl), HTTP/3 upstreams (rejected), envoy_internal_address
// endpoints (connect failure), subset load balancing (rejected by Compile;
// metadata_match ignored), close_connections_on_host_health_failure,
// drop_overload of assignments. auto_sni and auto_san_validation
// (upstream_http_protocol_options: a per-request SNI) are not applied: the
// socket's sni is used. A pending request waiting on a
// cluster-wide max_connections is woken by its own pool's events only, not
// by another host's connection closing. A request whose context is
// canceled counts as a timeout for outlier detection only when its cause
// says so (context.DeadlineExceeded, or an error with Timeout() true): the
// router's per-try timeout cancels with a plain error today, so per-try
// timeouts are not held against hosts.
package manager
