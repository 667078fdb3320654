// Package model holds the control plane's immutable domain types: services
// and their endpoints (from any registry), connected proxies, mesh-wide
// settings, and the Snapshot that joins configuration and registry state into
// the single input of the xDS generators.
//
//	config store ─┐
//	              ├─► Snapshot (immutable, versioned) ─► generators(snapshot, proxy)
//	registry ─────┘
//
// PeerAuthentication is resolved here (peer_authentication.go) with Istio's
// precedence: workload-selector policy in the workload's namespace, then
// the namespace-wide one, then the mesh-wide one in the root namespace,
// default PERMISSIVE; UNSET inherits; portLevelMtls overrides per workload
// port; the oldest policy wins a tie.
//
// AuthorizationPolicy selection (authorization.go) follows Istio for
// sidecars: root-namespace and workload-namespace policies whose selector
// is empty or matches the labels; policies with targetRefs never apply to
// sidecars. Results are split by action (CUSTOM, DENY, ALLOW, AUDIT).
//
// Nothing in this package performs I/O or imports Kubernetes libraries.
// Values reachable from a published Snapshot are never mutated.
package model
