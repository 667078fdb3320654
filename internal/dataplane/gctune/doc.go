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
package gctune
