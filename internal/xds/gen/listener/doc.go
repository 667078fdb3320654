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
// A Sidecar with ingress listeners (listener_ingress.go) replaces the
// services' inbound ports, as in Istio: each ingress port is an inbound
// port (cluster and route inbound|<port>||) named "<bind>_<port>" (bind,
// else the proxy's first global unicast IP, else the wildcard). With
// captureMode NONE (or DEFAULT on a proxy with INTERCEPTION_MODE NONE)
// it is a listener of its own bound at bind:port, inbound, with the same
// filter chains virtualInbound would carry for the port (inboundFilterChains:
// mTLS options, RBAC, HCM or tcp_proxy; metadata istio.config naming the
// Sidecar), inspectors as its chains need and no original_dst; otherwise
// its chains go into virtualInbound.
//
// With INTERCEPTION_MODE TPROXY the iptables TPROXY target hands captured
// connections to 15001 and 15006 without NAT, so virtualOutbound and
// virtualInbound (and only they, as in Istio) carry transparent: true: the
// proxy binds them with IP_TRANSPARENT and reads the original destination
// from the accepted socket's local address. Nothing else changes: the
// inbound passthrough still connects from 127.0.0.6 (no original_src).
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
// The proxy fields read are Type, Namespace, Labels, ServiceAccount,
// INTERCEPTION_MODE and its service instances (Snapshot.ProxyInstances),
// all part of the generator cache key (xds/gen.Key); binds are IPv4
// (0.0.0.0) for that reason. Its IPs are read only for Sidecar ingress
// binds, and the key includes them exactly when the Sidecar declares
// ingress.
//
// Inbound mTLS (listener_mtls.go) follows PeerAuthentication for the
// proxy's namespace and labels (model.Snapshot.PeerAuthentication), per
// target port. Each inbound port gets Istio's filter chains for its mode
// and protocol (inboundMatchOptions): STRICT only chains matching
// transport_protocol "tls" that terminate mTLS; PERMISSIVE those plus
// raw_buffer chains (and, on TCP and sniffed ports, a chain passing
// application TLS through untouched); DISABLE raw_buffer only. The
// passthrough chains use the workload's mode, plus per-port passthrough
// chains for portLevelMtls ports no service declares. The TLS inspector is
// added wherever a chain matches on "tls". Terminating chains carry
// envoy.transport_sockets.tls with a DownstreamTlsContext: certificate SDS
// "default", validation SDS "ROOTCA" with URI-SAN prefix matchers
// spiffe://<td>/ for the trust domain and each alias,
// require_client_certificate, TLS 1.2 (meshMTLS.minProtocolVersion) to
// 1.3, Istio's server ciphers (meshMTLS.cipherSuites), ALPN h2,http/1.1
// (TCP chains: istio-peer-exchange first). The SDS references and what a
// proxy must do with them are specified in package gen/mtls. A proxy
// without a service account has no identity: PERMISSIVE gives it
// plaintext chains only, STRICT still TLS-only chains. Inbound HCMs set
// forward_client_cert_details APPEND_FORWARD and
// set_current_client_cert_details {subject, uri, dns}, as Istio.
//
// HCMs carry the mesh config's access log (accessLogFile, accessLogFormat,
// accessLogEncoding) and tracing (tracing.go: defaultProviders.tracing →
// an opentelemetry extension provider exported over gRPC to its outbound
// cluster, or enableTracing; defaultConfig.tracing.sampling, default 1%).
// The Telemetry API is not read yet (no schema for it): per-workload
// providers, sampling and custom tags are left for it.
//
// Authorization (listener_authz.go): the AuthorizationPolicies selecting
// the proxy (model.Snapshot.AuthorizationPolicies) are translated once per
// generation by package gen/authz (with the mesh config's extension
// providers for CUSTOM); inbound HCMs start with its CUSTOM shadow RBAC
// and ext_authz filters, then the JWT filter, then its
// envoy.filters.http.rbac filters, and inbound TCP chains (service ports
// and passthrough) with its envoy.filters.network.rbac filters, ahead of
// tcp_proxy. Outbound listeners and the blackhole chains get none.
//
// Seams left for later issues: httpFilters (authn, stats, wasm, and
// Istio's outbound ALPN override istio-http/1.0|1.1|istio-h2, which lets
// a server pick its HTTP mTLS chain on sniffed ports) and
// tcpNetworkFilters (RBAC, stats) — each is the single place to extend.
package listener
