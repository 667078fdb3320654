// Package listener generates the listeners (LDS) of a sidecar proxy from its
// model.Scope, following the shape Istio gives them so that Istio's tools,
// dashboards and habits carry over.
//
//	model.Scope ─► Build ─┬─ outbound: one listener per bind:port of each visible
//	                      │    service port (0.0.0.0_<port> for HTTP, <vip>_<port>
//	                      │    for TCP/TLS/sniffed), bind_to_port false
//	                      ├─ virtualOutbound 0.0.0.0:15001  use_original_dst → the
//	                      │    listeners above, else PassthroughCluster|BlackHoleCluster
//	                      └─ virtualInbound  0.0.0.0:15006  one filter chain set per
//	                           inbound target port + passthrough chains
//
// HTTP filter chains reference route configurations by name over ADS; the
// route generator serves them:
//
//	outbound, shared per port      "<port>"                 RouteName
//	outbound, sniffed port on VIP  "<host>:<port>"          SniffedRouteName
//	inbound                        "inbound|<targetPort>||" InboundRouteName
//
// Generation is a pure function of the scope: no I/O, no globals besides
// immutable tables, output sorted by listener name. Problems that Istio
// resolves by dropping a service from a listener (port conflicts) are returned
// as Conflicts by BuildWithConflicts; the caller decides how to report them.
//
// The proxy fields read are Type, Namespace, Labels and its service
// instances (Snapshot.ProxyInstances), all part of the generator cache key
// (xds/gen.Key); binds are IPv4 (0.0.0.0) for that reason.
//
// Seams left for later issues: inboundTLSMode / downstreamTransportSocket
// (mTLS; plaintext only today), httpFilters (authn, authz, stats, wasm) and
// tcpNetworkFilters (RBAC, stats) — each is the single place to extend.
package listener
