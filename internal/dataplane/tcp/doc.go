// Package tcp is Envoy's tcp_proxy network filter
// (envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy): a
// listener.ConnHandler that connects each downstream connection to a
// cluster and relays bytes both ways.
//
//	TcpProxy ──Compile──► *Settings (defaults applied; an error is the NACK)
//	Builder{Upstream, Observer} ── Build(filter) ──► *Proxy   (listener.NetworkFilters for TypeURL)
//
//	Proxy.Serve(ctx, *listener.Conn)
//	   pick cluster ── cluster, or weighted_clusters (uniform in [0, total weight))
//	   connect ─────── Upstream.Dial(ctx, cluster, conn), up to max_connect_attempts
//	   │                (default 1), back-off between tries if backoff_options;
//	   │                ErrNoCluster / ErrNoHealthyUpstream / ErrOverflow end at once
//	   relay ───────── downstream ──pipe──► upstream    EOF ⇒ CloseWrite of the other side
//	                   downstream ◄──pipe── upstream    (TCP FIN; TLS close_notify + FIN)
//	                   ends when both directions ended, on an error (both closed), at
//	                   idle_timeout (default 1h, 0 disables; no byte either way),
//	                   max_downstream_connection_duration (+ jitter), or when ctx ends
//	   Observer ────── Connected, Transferred (per chunk, concurrent), Closed
//	                   with bytes received/sent and response flags
//	                   (NC, UH, UO, UF, URX, SI, DT)
//
// The Upstream interface is the seam to the upstream package (load
// balancing, health, circuit breakers, connect timeouts). ORIGINAL_DST
// clusters such as Istio's PassthroughCluster dial the connection's
// original destination, and only when original_dst restored it
// (listener.Conn.Restored), as Envoy's original destination load balancer;
// Direct implements that and static address lists for tests and tools.
// hash_policy source_ip is passed to the Upstream as HashKey(ctx).
// An upstream connection that is a PeerIdentifier (mTLS with a verified
// server certificate) gives its identity to Session.UpstreamPeerIdentity.
//
// SNI passthrough needs nothing here: the listener selects the chain by
// server_names and this proxy relays the TLS bytes untouched.
//
// Rejected by Compile: on_demand, tunneling_config (HBONE comes with its
// own package), metadata_match, upstream_connect_mode other than
// IMMEDIATE, hash policies other than source_ip. access_log entries are
// compiled by the Builder's AccessLogs (the telemetry layer's access
// loggers; an error rejects the filter) and called with each session once
// it is closed, after the Observer; without AccessLogs they are ignored.
// Like Envoy, the proxy does not read downstream bytes before the upstream
// connection is up.
//
// Goroutines: Serve runs in the listener's connection goroutine and starts
// two copying goroutines, which it waits for before returning.
package tcp
