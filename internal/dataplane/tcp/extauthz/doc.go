// Package extauthz is the envoy.filters.network.ext_authz network filter:
// it asks an external authorization service (envoy.service.auth.v3
// Authorization/Check over gRPC) whether a TCP connection may proceed, as
// Istio configures it for an AuthorizationPolicy with action CUSTOM and an
// envoyExtAuthzGrpc provider on a TCP workload port.
//
//	accept ─► network RBAC (shadow rules = the CUSTOM rules; writes
//	          │  envoy.filters.network.rbac/istio_ext_authz_shadow_effective_policy_id
//	          │  into the connection's metadata, rbac.ContextWithMetadata)
//	          ▼
//	        ext_authz: filter_enabled_metadata matches? ─no─► next (disabled)
//	          │ yes
//	          ▼
//	        Check(source/destination address and principal, SNI, metadata)
//	          ├► OK     ─► next (tcp_proxy dials the upstream)
//	          ├► denied ─► connection closed
//	          └► error  ─► failure_mode_allow ? next : connection closed
//
// The check runs once, when the connection reaches the filter, before the
// next filter sees it: a denied connection is closed before tcp_proxy
// dials the upstream and before any byte is read or forwarded. (Envoy
// checks on the first downstream byte, with tcp_proxy already connecting
// upstream; a TCP CheckRequest carries only connection attributes, known
// at accept, so the answer is the same, and a denied client never opens
// an upstream connection here, server-first protocols included.)
//
// CheckRequest: attributes.source.address (the peer), .principal (the
// verified client certificate's URI SAN, mutual TLS only), .certificate
// (URL-encoded PEM, include_peer_certificate); attributes.destination
// .address (the original destination), .principal (Filters.LocalPrincipal
// on TLS connections); tls_session.sni (include_tls_session);
// metadata_context.filter_metadata for metadata_context_namespaces. An OK
// response's dynamic_metadata is stored under
// "envoy.filters.network.ext_authz" for later filters.
//
// The gRPC channel (grpc_service.envoy_grpc: the cluster dialled through
// Filters.Upstream, the cluster manager; authority as configured) is
// opened lazily, shared by every connection of the filter and closed with
// it (io.Closer, when the listener generation is released). The timeout is
// grpc_service.timeout, Envoy's 200ms when unset.
//
// Counters (Filters.Stats, Envoy's names under ext_authz.<stat_prefix>,
// its trailing "." dropped): total, ok, denied, error,
// failure_mode_allowed, disabled (filter_enabled_metadata did not
// match), cx_closed; "tcp." gives ext_authz.tcp.ok. Envoy's active gauge
// is not kept.
//
// Rejected at Build: google_grpc, initial_metadata, a V2 transport,
// typed_metadata_context_namespaces, bootstrap_metadata_labels_key,
// send_tls_alert_on_denial and shadow_mode.
package extauthz
