// Package lb picks upstream hosts the way Envoy's load balancers do
// (source/extensions/load_balancing_policies). A Balancer is built from an
// immutable host.Set and answers Pick from any number of goroutines; when
// hosts or their health change, the cluster builds a new Balancer and swaps
// it in.
//
//	Pick(ctx) ─► priority: hash or random % 100 against the per-priority load
//	             (healthy share × overprovisioning 1.4, capped at 100%, spilled
//	             to the next priority; degraded hosts after healthy ones)
//	          ─► hosts of that priority:
//	               panic (healthy < healthy_panic_threshold)   all hosts
//	               locality_weighted_lb_config                 a locality by EDF over
//	                                                           weight × availability
//	               otherwise                                   healthy (or degraded) hosts
//	          ─► policy:
//	               ROUND_ROBIN     equal weights: shared counter; weighted: EDF
//	               LEAST_REQUEST   equal weights: best of choice_count random hosts;
//	                               weighted: EDF on weight / (active+1)^bias
//	               RANDOM          uniform, weights ignored (as Envoy)
//	               RING_HASH       ketama ring of xxHash64("<address>_<i>"), binary search
//	               MAGLEV          65537-entry Maglev table (Envoy's permutation)
//	          ─► previous_hosts: re-pick up to SelectionRetries times while the
//	             host is in ctx.Previous (hash balancers step along the ring/table)
//
// Ring hash and Maglev hash with the request hash (PickContext.Hash, from
// the route's hash policies) and fall back to a random value without one,
// as Envoy does; priority selection then uses the same hash.
//
// ORIGINAL_DST clusters have no balancer: the caller connects to the
// destination recovered from the downstream connection (or the
// x-envoy-original-dst-host header when use_http_header is set); see
// upstream.Instance.
//
// Costs: Pick allocates nothing. Equal-weight round robin, random, ring hash
// and Maglev are lock-free; weighted round robin is lock-free when one
// period of its EDF schedule fits a small table, and takes a mutex
// otherwise, as do weighted least request and locality picks (Envoy keeps
// one balancer per worker thread; we share one per cluster).
package lb
