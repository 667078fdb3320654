// Package gctune bounds the proxy's garbage-collector headroom to a fixed
// number of bytes instead of a fraction of the live heap.
//
// Go's default (GOGC=100) lets the heap grow to twice the live heap before
// a collection. For a proxy that is the wrong shape twice over: with a
// small configuration the live heap is a few megabytes, so under load the
// collector runs every few megabytes of request garbage (GC CPU on every
// request); with a large configuration (1,000 services) the live heap is
// tens of megabytes of compiled clusters and routes that never die, and
// doubling it only buys resident memory. A Tuner keeps the next heap goal
// at about live + Headroom: after every collection it reads the live heap
// (runtime/metrics "/gc/heap/live:bytes") and sets the GC percentage to
// 100·Headroom/live, clamped to [MinPercent, MaxPercent].
//
//	live heap   GOGC   heap goal (Headroom 8 MiB, the default)
//	  2 MiB      400    10 MiB   (the ceiling; collections 4× rarer than GOGC=100)
//	  4 MiB      200    12 MiB
//	  8 MiB      100    16 MiB   (Go's default)
//	 24 MiB       33    32 MiB   (instead of 48: 1,000 services)
//	 64 MiB       25    80 MiB   (the floor; instead of 128)
//
// The hook is a finalizer on a sentinel object that is re-armed on every
// run, so the Tuner runs once per GC cycle on the finalizer goroutine and
// costs nothing between collections. An operator's explicit GOGC
// environment variable wins: Start does nothing when it is set (and
// GOMEMLIMIT, when set, still caps the heap as usual).
//
// A Releaser returns the start-up (or large push) peak to the OS. Decoding
// and compiling 1,000 clusters and 5,000 endpoints at once grows the heap
// well above its steady goal, and the runtime's background scavenger gives
// the difference back slowly, if at all. The role brackets each apply with
// Track; once changes pause (Quiet, at most MaxDelay), a check on a timer
// goroutine decides, in two pure steps:
//
//	Large(bytes the tracked applies allocated) ≥ MinAlloc (8 MiB)?  no → done, no collection
//	runtime.GC, then Excessive(heap held − fresh goal ≥ 4 MiB and ≥ 10 % of the goal)?
//	yes → debug.FreeOSMemory, and no other release for MinInterval (30 s)
//
// so endpoint churn costs nothing and a stream of large pushes at most one
// forced release per MinInterval; the request path never waits for it.
// ReleaseConfig.Settled runs at the end of the first check (the start-up
// configuration has settled) and of every later check of a large change:
// the sidecar drops its executable's page mappings there (package
// execpages).
package gctune
