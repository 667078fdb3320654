// Package jwt translates the RequestAuthentications that apply to a
// sidecar workload into Envoy's JWT filter (envoy.filters.http.jwt_authn)
// for the inbound HTTP connection managers, as Istio's authn policy
// applier does (pilot/pkg/security/authn: convertToEnvoyJwtConfig).
//
//	[]RequestAuthentication ─► jwtRules (policy order, then stable by issuer)
//	   rule i ─► provider "origins-<i>": issuer, audiences, locations
//	             (from_headers with value_prefix, from_params, from_cookies),
//	             forward, forward_payload_header, claim_to_headers,
//	             payload_in_metadata "payload" (the key RBAC's request
//	             principal and claim matchers read), space-delimited claims
//	             (scope, permission and the rule's own), local_jwks
//	   one provider:  requires_any{origins-0, allow_missing}
//	   several:       requires_any{origins-0, .., origins-n,
//	                    requires_all{any{origins-i, allow_missing}...}}
//	   rule match prefix "/", bypass_cors_preflight
//
// The requirement makes a missing token pass (authorization then decides,
// requestPrincipals never matching) and a present but invalid token fail
// with 401.
//
// Keys: an inline jwks is used as is. A jwksUri is resolved by the control
// plane, as Istio does by default (PILOT_JWT_ENABLE_REMOTE_JWKS=false):
// the snapshot carries the key set its resolver last fetched
// (model.Snapshot.JWKS), inlined as local_jwks. When it has none (the
// fetch failed, or never ran), the provider gets an empty key set
// {"keys":[]}, so its tokens fail: unlike Istio's placeholder key, no
// fallback key is ever sent. A rule with neither jwks nor jwksUri would
// need OpenID discovery from the issuer, which is not implemented: it gets
// the empty key set and a warning.
//
// Build is pure and deterministic; the key sets come from the snapshot,
// whose version changes when they do.
package jwt
