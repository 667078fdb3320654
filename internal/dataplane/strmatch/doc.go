// Package strmatch is Envoy's envoy.type.matcher.v3.StringMatcher for the
// proxy's route tables (package route) and authorization policies
// (package rbac): exact, prefix, suffix, contains and RE2 full-match
// regexes, with ignore_case folding ASCII only (absl's *IgnoreCase
// helpers, as Envoy) and never applied to regexes. The ASCII folding
// helpers are exported for the matchers around it (paths, hosts).
package strmatch
