// Package route compiles an xDS RouteConfiguration into an immutable
// routing table and answers, per request, which route applies and what it
// does, with Envoy's semantics (Envoy's router source and docs are the
// reference). It is pure: no I/O, no globals but immutable tables, and the
// common match path does not allocate.
//
//	RouteConfiguration ──Compile──► *Table (immutable; swapped whole on RDS update)
//	   (error names virtual host / route index and reason → NACK)
//
//	*Request ──Table.Match──► *Route ──► Action: *Forward | *Redirect | *DirectResponse | NonForwarding
//	                             │         Forward.ClusterFor / WeightedClusters.Pick
//	                             │         Route.UpstreamPath / UpstreamAuthority / Location
//	                             │         Forward.Retry, Forward.Hash.Hash, Forward.Mirrors, timeouts
//	                             └──► FinalizeRequestHeaders / FinalizeResponseHeaders,
//	                                  Filter(name), Fault(wc), CORS(wc) for the filters
//
// # Decision order
//
//  1. Virtual host (Table.VirtualHost), as RouteMatcher::findVirtualHost:
//     with only a "*" host, that host; otherwise the :authority (or
//     vhost_header) is required; its port is dropped under
//     ignore_port_in_host_matching; it is lower-cased; then exact domain >
//     longest "*suffix" > longest "prefix*" > "*". A wildcard covers at
//     least one character. No virtual host: no route (404).
//  2. TLS requirement: require_tls ALL (or EXTERNAL_ONLY for requests
//     without x-envoy-internal: true) sends plaintext requests (by
//     x-forwarded-proto, else Scheme) a 301 to https.
//  3. Routes in order; the first whose checks all hold wins: path
//     (prefix, path, safe_regex full match, path_separated_prefix,
//     connect_matcher; query and fragment removed; case_sensitive applies
//     to all but regex; only CONNECT routes serve path-less requests),
//     runtime_fraction (Request.Random % denominator < numerator), grpc
//     (content-type application/grpc[+|;]), headers (all), query
//     parameters (all; first value, not decoded), cookies, tls_context.
//     Routes with dynamic_metadata or filter_state matchers never match:
//     the table cannot see that state, so it fails closed rather than
//     widening the route.
//  4. The action: Forward (cluster, cluster_header or weighted clusters;
//     Pick is r % total over cumulative weights), Redirect (Location as
//     Envoy's newUri), DirectResponse, NonForwarding.
//
// Precedence elsewhere: a route's retry policy replaces the virtual host's
// (never merged); mirror policies come from the route, else the virtual
// host, else the configuration; typed_per_filter_config from the weighted
// cluster, else route, else virtual host, else configuration (Fault is
// that most specific config; CORS merges per attribute like Envoy's CORS
// filter; the legacy cors fields are used only when no level has a typed
// CORS config); header mutations run weighted cluster, route, virtual
// host, configuration (configuration first under
// most_specific_header_mutations_wins, the weighted cluster still first).
// Timeout is 15 s when unset and 0 disables it.
//
// # What the engine does before and around routing
//
// The table matches what it is given: path normalisation (merge slashes,
// dot segments, escaped slashes), fragment stripping, trailing-dot and
// port stripping of the authority (strip_trailing_host_dot,
// strip_matching_host_port) and x-forwarded-proto belong to the
// connection manager and must run before Match (SECURITY.md section A).
//
// # Not supported
//
// Rejected at Compile (so the xDS client NACKs): vhds, virtual-host
// matcher trees, cluster specifier plugins, route specifiers,
// path_match_policy / path_rewrite_policy / path_rewrite, filter_action,
// retry_policy_typed_config, custom string matchers, non-inline direct
// response bodies. Ignored: runtime keys (no runtime layer; default
// values apply), header value substitution commands (kept raw, marked
// HeaderAdd.Dynamic), header-controlled faults and fault rate limits
// (flagged on Fault), rate limits, hedging, tracing, internal redirects.
//
// # Memory
//
// A Table holds nothing of the decoded RouteConfiguration: the fields it
// uses are copied into its own structs (strings through unique, so equal
// names share one copy; metadata_match and typed_per_filter_config as
// deep copies), so the decoded message is garbage once Compile returns.
// A consumer needing a field the table does not model decodes it from
// the serialized resource the xDS client keeps, rather than the table
// carrying the proto.
package route
