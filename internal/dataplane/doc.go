// Package dataplane is the root of Trellis's proxy: one engine, four roles
// (sidecar, ztunnel, waypoint, gateway), configured only by xDS.
//
//	control plane ──ADS──► xdsclient ──typed resources──► engine config (immutable, swapped atomically)
//	                          ▲  NACK with a precise message       │
//	                          └────────────────────────────────────┤
//	capture (iptables, SO_ORIGINAL_DST) ─► listener (filter-chain match, protocol sniffing)
//	                                          ├─► http (connection manager: route ─► filters ─► router)
//	                                          └─► tcp (tcp_proxy, SNI passthrough)
//	                                                        │
//	                                                  upstream (clusters, load balancing, outlier
//	                                                  detection, circuit breakers, connection pools)
//	telemetry (Istio metrics, access logs, tracing) and admin (15000, 15020, 15021) observe all of it.
//
// Packages (one job each):
//
//	xdsclient  ADS client: delta by default, state of the world as fallback;
//	           subscriptions, warming order, ACK/NACK, reconnect with back-off
//	xdsset     the hand-off of one type's resources to the components: names,
//	           versions, messages decoded on demand (nothing decoded is kept)
//	route      RouteConfiguration compiled into a matcher and typed actions
//	strmatch   Envoy's StringMatcher (ASCII ignore_case), shared by route and rbac
//	h1wire     HTTP/1.1 wire pieces shared by the server and client codecs
//	rbac       RBAC policies (authorization) compiled and evaluated
//	upstream   load balancers, outlier detection, circuit breakers, pools
//	capture    iptables redirection rules and original-destination recovery
//	listener   listeners compiled from xDS: filter-chain matching, TLS and
//	           HTTP inspectors, original-destination hand-off, live updates
//	tcp        tcp_proxy: weighted clusters, half-close, idle/duration limits
//	sockio     TCP reads and writes as raw system calls (no scheduler
//	           hand-off per write), for the listeners' and dialers' sockets
//	http       the HTTP connection manager: normalisation, filters, router
//	identity, secrets, tlssock   workload certificates, SDS names, TLS sockets
//	telemetry  Istio metrics, access logs, tracing
//	role/...   the roles assembled from the above (sidecar)
//
// Rule: nothing under internal/dataplane imports Kubernetes client
// libraries or the control plane (internal/config, internal/model,
// internal/xds/..., internal/discovery, internal/registry). It speaks to the
// control plane only through Envoy's xDS types. A test over `go list -deps`
// keeps it so.
package dataplane
