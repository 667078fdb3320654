// Package host holds upstream hosts and the immutable host sets load
// balancers read (Envoy's Host, HostSet and PrioritySet).
//
//	Endpoint (address, weight, locality, priority, EDS health, metadata)
//	   │ New / SetEndpoint (EDS updates keep the Host, swap its Endpoint);
//	   │ NewShared / ShareEndpoint keep the immutable set's Endpoint, not a copy
//	   ▼
//	Host ── Stats: atomic request/connection counters, written by pools and the router,
//	   │            read by least-request balancing
//	   │── Health(): EDS health + outlier ejection (+ active health checking, later)
//	   ▼
//	NewSet(groups) ──► Set: priorities 0..N, each with all / healthy / degraded hosts,
//	                   overall and per locality (sorted), locality weights,
//	                   overprovisioning factor — immutable; rebuilt on any change
//
// A Host is shared by every goroutine that picked it: its identity
// (address) never changes, its Endpoint is replaced atomically, its
// counters are atomics. A Set is never modified after NewSet returns.
package host
