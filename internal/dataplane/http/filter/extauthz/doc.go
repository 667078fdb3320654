// Package extauthz is the envoy.filters.http.ext_authz HTTP filter: it asks
// an external authorization service whether a request may proceed, as
// Istio's CUSTOM AuthorizationPolicy action configures it (mesh config
// envoyExtAuthzHttp / envoyExtAuthzGrpc providers).
//
//	Stream ─► filter_enabled_metadata matches? ─no─► next
//	            │ yes (the shadow RBAC filter marked the request)
//	            ▼
//	        buffer body (with_request_body) ─► Check (timeout) ─► allow: header mutations ─► next
//	                                                           ├► deny:  the service's status, headers, body
//	                                                           └► error: failure_mode_allow ? next : status_on_error (403)
//
// HTTP service (http_service): the check is a request to server_uri's
// cluster through the cluster manager (Factory.Upstream) with the
// request's method, path_prefix + the normalised :path (query included),
// :authority, Content-Length, and the request headers the allowed headers
// match (Envoy always adds Authorization, Method, Host, Path,
// Content-Length); a header sent several times reaches the service once,
// with its values joined by "," (SECURITY A9: every value is seen).
// headers_to_add are added. A 200 allows: the service's headers that
// allowed_upstream_headers match overwrite the request's,
// allowed_upstream_headers_to_append are appended, and
// allowed_client_headers_on_success are added to the response. A 5xx is
// an error. Any other status denies with that status, the service's body
// and its headers that allowed_client_headers match (all but Host and
// hop-by-hop headers when unset).
//
// gRPC service (grpc_service.envoy_grpc): envoy.service.auth.v3
// Authorization/Check over a gRPC channel dialled through the cluster
// manager (Factory.Dial), one channel per cluster, closed with the filter.
// The CheckRequest carries the source and destination addresses and
// principals, and the request (id, method, path, host, scheme, protocol,
// headers map with repeated values joined by ",", body). OK allows with
// ok_response's header mutations; another status denies with
// denied_response's status (403 when unset), headers and body.
//
// Errors (connection failures, the timeout — server_uri.timeout or
// grpc_service.timeout, Envoy's 200ms when unset) give status_on_error
// (403 by default) unless failure_mode_allow, which lets the request
// through. A body over max_request_bytes is refused with 413 unless
// allow_partial_message (then only the first bytes are sent).
//
// Not supported (rejected at Build): google_grpc, filter_enabled (runtime
// fractions), deny_at_disable, per-route ExtAuthzPerRoute is not read.
package extauthz
