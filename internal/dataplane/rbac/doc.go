// Package rbac is the proxy's role-based access control engine: it compiles
// an Envoy RBAC policy set (envoy.config.rbac.v3.RBAC, as Istio generates
// it from AuthorizationPolicy) into an immutable matcher and evaluates it
// against one request or connection, with Envoy's semantics.
//
//	RBAC proto ──Compile──► *Engine (immutable; an error is the NACK)
//	Input (request/connection attributes) ──Engine.Evaluate──► Decision
//
// A policy matches when any of its permissions and any of its principals
// match. ALLOW engines allow a request that some policy matches (none
// configured: nothing is allowed); DENY engines deny one that some policy
// matches; LOG engines always allow and report the matched policy.
// Policies are evaluated in name order (Envoy keeps them in a sorted map),
// so the reported policy is deterministic.
//
// Permissions: any, and_rules, or_rules, not_rule, header, url_path,
// destination_ip, destination_port, destination_port_range, metadata,
// requested_server_name, and the envoy.path.match.uri_template matcher
// extension (uritemplate.go). Principals: any, and_ids, or_ids, not_id,
// authenticated, direct_remote_ip, remote_ip, source_ip, header, url_path,
// metadata. Anything else (filter_state, the matcher API, sourced metadata,
// custom string matchers) is rejected at Compile, so a policy is never
// silently widened.
//
// Attribute semantics follow Envoy:
//   - header matchers read the request's headers (pseudo-headers :method,
//     :authority, :path included); connections have no headers, so a
//     header rule never matches at L4. A header sent several times or as
//     a comma-separated list is read every way an application might read
//     it (each value, each list element, Envoy's ","-joined value), and
//     the engine takes the safe answer (SECURITY A9): DENY and LOG
//     engines match when any reading matches (string comparisons other
//     than regexes then also ignore ASCII case), ALLOW engines only when
//     every reading matches exactly; not_rule/not_id swap the two. One
//     value without a comma is read exactly as Envoy does (headerRule);
//   - url_path matches :path without query and fragment (the connection
//     manager's normalised path);
//   - authenticated principal_name matches any URI SAN of the verified
//     peer certificate, else a DNS SAN, else the subject; without a
//     verified peer certificate it never matches, with no principal_name
//     it matches any verified peer;
//   - metadata matchers read Input.Metadata (dynamic metadata by filter
//     name: a JWT filter puts the token payload under
//     "envoy.filters.http.jwt_authn" → "payload"); absent metadata does not
//     match unless the matcher is inverted.
//
// The package is pure: Evaluate allocates nothing on the common path and
// is safe for concurrent use. Stats (Envoy's rbac.allowed, denied,
// shadow_allowed, shadow_denied) are counted by the filters through the
// Stats type here, under Envoy's names (NewStatNames joins the parts as
// Envoy's statPrefixJoin: tcp.rbac.allowed,
// http.rbac.istio_dry_run_allow_.shadow_denied); Counters keeps them for
// the telemetry layer, which exports them with Istio's stat tags. A
// connection's dynamic metadata travels between network filters in the
// context (ContextWithMetadata, connmeta.go).
package rbac
