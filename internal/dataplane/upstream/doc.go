// Package upstream is the upstream side of the proxy, as Envoy's cluster
// manager does it: clusters compiled from CDS, their hosts from EDS (or
// inline, or DNS), load balancing, outlier detection and circuit breakers.
// Connection pools are built on top of it by the HTTP engine.
//
//	CDS Cluster ──Compile──► *Cluster (immutable; an error is the NACK's message)
//	EDS ClusterLoadAssignment ──Interner.Endpoints──► *EndpointSet (immutable; idem)
//	                                   │
//	New(*Cluster) ──► *Instance ◄──────┘ Update(*EndpointSet)
//	                     │  hosts ─ host.Host (address, weight, locality, priority,
//	                     │          EDS health, atomic request/connection counters)
//	                     │  lb.Balancer over an immutable host.Set, swapped on change
//	                     │  outlier.Detector ── Run(ctx): interval ticks
//	                     │  circuit.Breakers per routing priority
//	                     ▼
//	router: Pick(lb.PickContext) ─► host ─► Breakers().TryAcquire(...) ─► pool ─► Report(host, result)
//
// Subpackages, one concern each:
//
//	host     Host, Address, Endpoint; Set (hosts by priority and locality, classified by health)
//	lb       priority/locality selection, panic mode, ROUND_ROBIN (EDF), LEAST_REQUEST
//	         (P2C / weighted EDF), RANDOM, RING_HASH, MAGLEV
//	outlier  consecutive 5xx / gateway / local-origin failures, success rate,
//	         failure percentage; ejection with backoff
//	circuit  connection, pending request, request, retry and pool limits
//
// Compiled endpoints keep nothing of the decoded assignment. A manager
// compiles them through one Interner: equal transport socket match
// metadata (in a mesh, {"tlsMode":"istio"} on nearly every endpoint) is one
// shared, read-only *corev3.Metadata rebuilt from its deterministic
// serialization and held weakly by the table; locality and host names are
// canonical strings (package unique). Endpoints without an Interner shares
// within one assignment only.
//
// What a connection pool needs: Instance.Breakers(priority) for the
// cluster limits, Cluster.PerHostMaxConnections with
// host.Host.AcquireConnection for per-host limits, host.Host.Stats for the
// counters least-request balancing reads (RqActive), and Cluster.HTTP /
// Cluster.TransportSocket for how to connect. Compile's result points
// into the decoded Cluster through those opaque parts; once the owner has
// built its dialer it keeps Cluster.Retained, which drops them (HTTP/2
// options deep-copied, names copied) so the decoded message can be freed.
//
// ORIGINAL_DST clusters have no balancer: Pick returns ErrOriginalDst and
// the caller connects to the downstream connection's original destination.
//
// Envoy behaviour deliberately left out (Compile rejects what would change
// routing, ignores what only tunes it): subset load balancing, custom
// cluster types and load-balancing extensions other than the built-in five
// (rejected); active health checking, slow start, zone-aware routing (needs
// the local cluster), bounded-load consistent hashing (hash_balance_factor),
// retry budget_interval, and the outlier detection extension monitors
// (ignored or, for monitors, rejected).
package upstream
