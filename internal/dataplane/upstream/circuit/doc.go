// Package circuit holds a cluster's circuit breakers: Envoy's resource
// manager (source/common/upstream/resource_manager_impl.h), one per routing
// priority.
//
//	router / connection pool ──TryAcquire(r)──► count(r) < max(r)? ──yes──► count++ ── … ──Release(r)
//	                                                     │no
//	                                                     ▼
//	                                      Overflow (an error): overflow counter++,
//	                                      503 with response flag UO (requests),
//	                                      no retry (retries), queue (connections)
//
// The five resources and Envoy's defaults when a threshold is unset:
// connections 1024, pending requests 1024, requests 1024, retries 3,
// connection pools unlimited. A retry budget, when configured, replaces the
// retry limit with max(budget_percent × (active + pending requests),
// min_retry_concurrency).
//
// Breakers are safe for concurrent use: counts are atomics and
// TryAcquire never lets a count pass its limit.
package circuit
