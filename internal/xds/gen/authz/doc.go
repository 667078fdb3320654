// Package authz translates the AuthorizationPolicies that apply to a
// sidecar workload into Envoy RBAC filters, as Istio's authz builder does
// (pilot/pkg/security/authz/{builder,model}), for the inbound HTTP
// connection managers (envoy.filters.http.rbac) and inbound TCP filter
// chains (envoy.filters.network.rbac, stat_prefix "tcp.").
//
//	model.AuthzPolicies ─► Build ─► Filters{CustomHTTP, HTTP, TCP, Warnings}
//	   CUSTOM ─► shadow RBAC + ext_authz (CustomHTTP; first in TCP for a
//	             gRPC provider), or a DENY RBAC when the provider is
//	             unavailable (see below)
//	   AUDIT  ─► RBAC action LOG
//	   DENY   ─► RBAC action DENY
//	   ALLOW  ─► RBAC action ALLOW (present but matching nothing: deny)
//
// Filter order is CUSTOM, AUDIT, DENY, ALLOW; with no policy of an action
// there is no filter for it, so no ALLOW policy means allow. Policies
// annotated istio.io/dry-run: "true" go to shadow_rules (stat prefixes
// istio_dry_run_allow_ / istio_dry_run_deny_) and are never enforced.
//
// Each rule becomes one RBAC policy named ns[<ns>]-policy[<name>]-rule[<i>]:
// its to/operation entries are the permissions (each an and of hosts,
// methods, paths, ports, then the permission-side when conditions), its
// from/source entries the principals (principals, requestPrincipals,
// namespaces, remoteIpBlocks, ipBlocks, serviceAccounts, then the
// principal-side when conditions); values of a field are or-ed, not*
// values become not(or(...)). A policy with no rules never matches. A
// when key no generator translates (one validation accepts, such as
// source.serviceAccount) fails closed (SECURITY A12): an ALLOW rule using
// it is skipped (it never allows), a DENY or AUDIT rule is kept without
// that condition (it denies more, never less), as for HTTP-only fields on
// TCP below.
//
// Field translation (Istio's generators):
//
//	principals        authenticated principal_name, "spiffe://" prefixed
//	                  (exact, prefix "x*", suffix "*x" as regex, "*" = ".+")
//	namespaces        authenticated principal_name regex .*/ns/<ns>/.*
//	serviceAccounts   regex spiffe://.+/ns/<ns>/(.+/|)sa/<sa>(/.+)?
//	requestPrincipals and(metadata jwt_authn payload.iss, payload.sub)
//	ipBlocks          direct_remote_ip; remoteIpBlocks: remote_ip
//	hosts             header :authority: a host "h" or "*h" as the regex
//	                  (?i)h\.?(:[0-9]*)? (any case, optional trailing dot
//	                  and port: SECURITY A8); "h*" and "h:port" ignore_case
//	methods           header :method; paths: url_path, or the
//	                  envoy.path.match.uri_template matcher for {*}/{**}
//	ports             destination_port
//	when              request.headers[h] (header), source.ip, remote.ip,
//	                  source.namespace, source.principal,
//	                  request.auth.principal|audiences|presenter|claims[..]
//	                  (jwt_authn metadata), destination.ip,
//	                  destination.port, connection.sni,
//	                  experimental.envoy.filters.*[key] (metadata)
//
// Identity fail-closed (SECURITY A11, where Trellis is stricter than
// Istio): a source that names peer identities (principals, namespaces,
// serviceAccounts) decides against plaintext requests. In DENY and AUDIT
// rules a positive identity condition becomes or(not authenticated, c);
// in ALLOW rules a negative one becomes and(authenticated, c).
//
// Principals of the local trust domain (or "cluster.local") are expanded
// to every trust domain alias (Istio's trust domain migration).
//
// TCP: HTTP-only fields (hosts, methods, paths, request headers, JWT
// attributes) cannot be checked. In an ALLOW policy the rule that uses one
// is dropped (it never allows); in DENY and AUDIT policies only that field
// is dropped, so the rule denies more, never less.
//
// CUSTOM (extauthz.go): when every enforced CUSTOM policy names the same
// provider and meshConfig.extensionProviders declares it as
// envoyExtAuthzHttp or envoyExtAuthzGrpc with a service and port found by
// Options.LookupCluster, Build returns in CustomHTTP (placed before
// request authentication, Istio's order):
//
//	envoy.filters.http.rbac      shadow_rules = the CUSTOM rules, named
//	                             istio-ext-authz-<provider>-ns[..]-policy[..]-rule[i],
//	                             shadow_rules_stat_prefix istio_ext_authz_
//	envoy.filters.http.ext_authz http_service (server_uri cluster
//	                             outbound|port||host, path_prefix, allowed
//	                             and added headers, response header lists)
//	                             or grpc_service envoy_grpc (authority: the
//	                             cluster with "|" as "_."); timeout (600s
//	                             default), failure_mode_allow (failOpen),
//	                             status_on_error, with_request_body;
//	                             filter_enabled_metadata: rbac metadata
//	                             istio_ext_authz_shadow_effective_policy_id
//	                             prefixed istio-ext-authz
//
// so only requests a CUSTOM rule selects are sent to the provider. Header
// names "x-*" / "*-x" become case-insensitive prefix / suffix matchers; a
// lone "*" makes the provider invalid.
//
// On TCP chains a gRPC provider gives, first in Filters.TCP (Istio's
// order: CUSTOM, then AUDIT, DENY, ALLOW):
//
//	envoy.filters.network.rbac      stat_prefix "tcp.", shadow_rules = the
//	                                CUSTOM rules (translated for TCP as a
//	                                DENY: HTTP-only fields are dropped, so
//	                                the rule selects more connections),
//	                                shadow_rules_stat_prefix istio_ext_authz_
//	envoy.filters.network.ext_authz stat_prefix "tcp.", the provider's
//	                                grpc_service and failure_mode_allow,
//	                                filter_enabled_metadata on the network
//	                                RBAC's istio_ext_authz_shadow_effective_policy_id
//
// An HTTP provider gives no filter on TCP chains (Istio ignores it there:
// it cannot check a connection).
//
// Otherwise (provider not declared, invalid, service not found, or
// several providers for one workload) the provider is unavailable and
// Build does what Istio does: a DENY RBAC over the CUSTOM policies' rules,
// each named ...-deny-due-to-bad-CUSTOM-action, and a warning. Requests
// and connections the CUSTOM policy would send to the provider are
// refused (fail closed); others pass.
//
// Build is pure and deterministic; Warnings list what was skipped.
package authz
