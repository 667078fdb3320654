// Package jwks is the control plane's key resolver for RequestAuthentication
// jwksUri values: it fetches each key set, caches it, refreshes it, and
// hands the current sets to snapshot building, as istiod's JwksResolver
// does in Istio's default mode (keys inlined into the proxies' JWT
// filters; proxies never fetch).
//
//	snapshot build ─► Keys(ctx, uris) ─► cached sets; a uri seen for the
//	                                     first time is fetched now (bounded
//	                                     by Timeout, all new uris at once)
//	Run(ctx) ─ every Tick ─► Refresh ─► due entries refetched:
//	    success ............ every Refresh (default 20m, Istio's; the
//	                         control plane's --jwt-pub-key-refresh-interval,
//	                         env PILOT_JWT_PUB_KEY_REFRESH_INTERVAL)
//	    after a failure .... every RetryAfterFailure (default 1m)
//	  (Tick and RetryAfterFailure default to at most Refresh, so a short
//	  Refresh is honoured without setting them)
//	  a changed, new or dropped set ─► OnChange (the caller pushes)
//
// A fetch is one GET with a deadline (Timeout, default 5s) whose body is
// read up to MaxBytes (default 1 MiB); a non-2xx status, a larger body or
// a document that is not a JWKS with at least one usable key is a failure.
// Failure never produces keys: a uri that has never been fetched has no
// set (its tokens are rejected by the proxies); a set that was fetched
// stays in use through failed refreshes until it is MaxStale old (default
// 7 days, Istio's eviction), then it is dropped. Entries no snapshot asked
// for during Evict (default 7 days) are forgotten.
//
// Resolver is safe for concurrent use; Run's goroutine owns the refresh
// loop and calls OnChange from it.
package jwks
