// Package jwt is the envoy.filters.http.jwt_authn HTTP filter: it verifies
// JSON Web Tokens against the providers' key sets, as Istio's
// RequestAuthentication generates the filter for inbound HTTP.
//
//	Build(JwtAuthentication) ─► providers (issuer, audiences, locations,
//	                            local_jwks parsed once), rules
//	per request: first rule whose path matches ─► requirement tree
//	  provider_name / provider_and_audiences: every token found in the
//	      provider's locations must verify; none found = missing
//	  requires_any: one child passes; requires_all: every child passes
//	  allow_missing: no token anywhere passes; tokens found must verify
//	      with the provider of their issuer
//	  allow_missing_or_failed: always passes
//	pass ─► outputs of every verified token, then next
//	fail ─► local reply 401 (403 for audiences), body the status
//	        ("Jwt verification fails", "Jwt is expired", ...),
//	        www-authenticate: Bearer realm="<url>"[, error="invalid_token"]
//
// Verification follows Envoy's order: compact form and base64url, header
// alg (RS/PS/ES/HS 256-512, EdDSA; "none" and unknown algorithms are
// refused), issuer (a token whose iss is not the provider's fails),
// exp/nbf with clock_skew_seconds (default 60), audiences (a scheme
// prefix and a trailing slash are ignored when comparing), then the
// signature with the configured keys only: a key is tried when its kid
// and alg (if set) agree with the token's and its type fits the algorithm
// (RSA for RS/PS, EC of the matching curve for ES, oct for HS, OKP for
// EdDSA), so an RS256 key can never verify an HS256 token. Keys named by
// the token (jku, x5u, jwk, x5c) are ignored.
//
// Token locations: from_headers (value_prefix searched in the value, the
// token taken from the JWT characters after it), from_params (query
// string), from_cookies; a provider without any uses Envoy's defaults,
// "Authorization: Bearer <token>" (scheme case-insensitive) and the
// access_token parameter. Outputs of a verified token: its payload in
// dynamic metadata (Stream.Metadata["envoy.filters.http.jwt_authn"]
// [payload_in_metadata], claims listed in normalize_payload_in_metadata
// space_delimited_claims split into lists), forward_payload_header (the
// token's base64url payload), claim_to_headers (string, number and bool
// claims; nested claims by dotted name), and unless forward is set the
// token's header is removed before the request goes upstream (tokens in
// query parameters and cookies stay, as in Envoy).
//
// A key set with no usable key is accepted (the control plane sends
// {"keys":[]} when it could not fetch a jwksUri): every token of that
// provider then fails. Not supported, rejected at Build: remote_jwks (the
// control plane inlines fetched keys, Istio's default), subjects,
// max_lifetime, header_in_metadata, failed_status_in_metadata,
// filter_state_rules, requirement_map, and route matches other than
// prefix and path. clear_route_cache is accepted; the route is not
// re-evaluated after the filter edits headers.
package jwt
