// Package outlier is Envoy's passive health checking: it watches the results
// of requests to each upstream host and ejects outliers from load balancing
// for a while (Envoy's outlier_detection, source/common/upstream/
// outlier_detection_impl.cc).
//
//	router ──Put(Result)──► Monitor (one per host; atomic counters, no lock)
//	                           │ consecutive 5xx / gateway / local-origin
//	                           │ counter reaches its threshold (exactly once)
//	                           ▼
//	                        Detector ──ejectHost──► max_ejection_percent, enforcing_* dice,
//	                        (mutex)                 backoff++ ──► OnChange(m) ──► cluster LB stale (rebuilt at next pick)
//	                           ▲
//	timer (Run) ──Tick(now)────┘ un-eject hosts whose time is up, swap success-rate
//	                             buckets, success-rate and failure-percentage ejections,
//	                             decrement the backoff of hosts healthy for an interval
//
// Detection types, with Envoy's defaults (DefaultConfig):
//
//   - consecutive_5xx (5, enforced 100%): any 5xx, and local-origin errors
//     mapped to 5xx unless split_external_local_origin_errors is set;
//   - consecutive_gateway_failure (5, enforced 0%): 502, 503, 504;
//   - consecutive_local_origin_failure (5, enforced 100%): connect failures
//     and timeouts, only with split_external_local_origin_errors;
//   - success rate (enforced 100%, ≥5 hosts with ≥100 requests in the last
//     interval, threshold mean − stdev×1.9) and failure percentage (85%,
//     enforced 0%), for external and, when split, local-origin results.
//
// Ejection: a host is ejected only if the ejected share of all hosts stays
// within max_ejection_percent (10%); with always_eject_one_host the first
// ejection is always allowed. The ejection lasts
// min(base_ejection_time × backoff, max_ejection_time) + jitter, where the
// backoff grows by one on every ejection (capped once the product passes
// max_ejection_time) and shrinks by one on every interval tick that finds the
// host healthy at least one interval after its last un-ejection. So a host
// that fails again right after coming back stays out twice as long; one
// that behaves for a while starts from base_ejection_time again.
//
// Monitor.Put is safe for concurrent use and lock-free unless a threshold
// is crossed. Everything time-dependent takes its time from Options.Now
// (ejection) or from the argument of Tick, so tests drive the state machine
// with a fake clock; Run is the ticker goroutine, owned by the cluster.
package outlier
