package circuit

import (
	"math"
	"sync/atomic"
)

// Resource is a resource a circuit breaker limits.
type Resource uint8

const (
	Connections Resource = iota
	PendingRequests
	Requests
	Retries
	ConnectionPools
	// NumResources is the number of resources, for iterating and sizing arrays.
	NumResources
)

func (r Resource) String() string {
	switch r {
	case Connections:
		return "connections"
	case PendingRequests:
		return "pending_requests"
	case Requests:
		return "requests"
	case Retries:
		return "retries"
	case ConnectionPools:
		return "connection_pools"
	}
	return "unknown"
}

// Priority is a routing priority (envoy.config.core.v3.RoutingPriority).
type Priority uint8

const (
	Default Priority = iota
	High
	NumPriorities
)

func (p Priority) String() string {
	if p == High {
		return "high"
	}
	return "default"
}

// Unlimited is the limit of a resource without one.
const Unlimited = math.MaxUint64

// Thresholds are the limits of one priority.
type Thresholds struct {
	MaxConnections     uint64
	MaxPendingRequests uint64
	MaxRequests        uint64
	MaxRetries         uint64
	MaxConnectionPools uint64
	// RetryBudget, when set, replaces MaxRetries.
	RetryBudget *RetryBudget
	// TrackRemaining asks for remaining_* gauges.
	TrackRemaining bool
}

// RetryBudget limits concurrent retries relative to the requests in
// flight.
type RetryBudget struct {
	// Percent of active plus pending requests. Envoy: 20.
	Percent float64
	// MinConcurrency is the least the budget allows. Envoy: 3.
	MinConcurrency uint32
}

// DefaultThresholds are Envoy's limits when a priority has no thresholds.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MaxConnections:     1024,
		MaxPendingRequests: 1024,
		MaxRequests:        1024,
		MaxRetries:         3,
		MaxConnectionPools: Unlimited,
	}
}

// Overflow is the error TryAcquire returns when a limit is reached. It
// names the resource; Stat gives Envoy's counter. Comparing with the
// constants works (errors.Is too).
type Overflow uint8

const (
	ConnectionOverflow     = Overflow(Connections) + 1
	PendingRequestOverflow = Overflow(PendingRequests) + 1
	RequestOverflow        = Overflow(Requests) + 1
	RetryOverflow          = Overflow(Retries) + 1
	ConnectionPoolOverflow = Overflow(ConnectionPools) + 1
)

// Resource returns the resource that overflowed.
func (o Overflow) Resource() Resource { return Resource(o - 1) }

func (o Overflow) Error() string {
	return "upstream overflow: " + o.Resource().String() + " circuit breaker open"
}

// Stat is the name of Envoy's cluster counter for this overflow.
func (o Overflow) Stat() string {
	switch o {
	case ConnectionOverflow:
		return "upstream_cx_overflow"
	case PendingRequestOverflow, RequestOverflow:
		// Envoy counts both as pending overflows: "requests that
		// overflowed connection pool or requests circuit breaking".
		return "upstream_rq_pending_overflow"
	case RetryOverflow:
		return "upstream_rq_retry_overflow"
	case ConnectionPoolOverflow:
		return "upstream_cx_pool_overflow"
	}
	return "unknown"
}

// ResponseFlag is the access-log response flag of a request failed by
// this overflow: UO for request limits, empty for the others (a retry
// overflow only stops retrying; a connection overflow queues the request).
func (o Overflow) ResponseFlag() string {
	if o == PendingRequestOverflow || o == RequestOverflow {
		return "UO"
	}
	return ""
}

// Breakers are the circuit breakers of one cluster priority.
type Breakers struct {
	th       Thresholds
	count    [NumResources]atomic.Uint64
	overflow [NumResources]atomic.Uint64
}

// New returns breakers with th's limits.
func New(th Thresholds) *Breakers { return &Breakers{th: th} }

// Thresholds returns the configured limits.
func (b *Breakers) Thresholds() Thresholds { return b.th }

// Max returns the limit of r now; the retry limit depends on the requests
// in flight when a retry budget is set.
func (b *Breakers) Max(r Resource) uint64 {
	switch r {
	case Connections:
		return b.th.MaxConnections
	case PendingRequests:
		return b.th.MaxPendingRequests
	case Requests:
		return b.th.MaxRequests
	case Retries:
		if rb := b.th.RetryBudget; rb != nil {
			active := b.count[Requests].Load() + b.count[PendingRequests].Load()
			return max(uint64(rb.Percent/100*float64(active)), uint64(rb.MinConcurrency))
		}
		return b.th.MaxRetries
	case ConnectionPools:
		return b.th.MaxConnectionPools
	}
	return 0
}

// TryAcquire takes one unit of r if its count is below its limit, and
// returns nil; otherwise it counts an overflow and returns it. Every
// successful TryAcquire must be paired with a Release.
func (b *Breakers) TryAcquire(r Resource) error {
	c := &b.count[r]
	for {
		cur := c.Load()
		if cur >= b.Max(r) {
			b.overflow[r].Add(1)
			return Overflow(r) + 1
		}
		if c.CompareAndSwap(cur, cur+1) {
			return nil
		}
	}
}

// Release returns one unit of r.
func (b *Breakers) Release(r Resource) {
	c := &b.count[r]
	for {
		cur := c.Load()
		if cur == 0 {
			return // unbalanced Release; never wrap around
		}
		if c.CompareAndSwap(cur, cur-1) {
			return
		}
	}
}

// Count returns the units of r in use.
func (b *Breakers) Count(r Resource) uint64 { return b.count[r].Load() }

// Open reports whether r is at its limit (Envoy's circuit_breakers.*.
// cx_open, rq_pending_open, rq_open, rq_retry_open, cx_pool_open gauges).
func (b *Breakers) Open(r Resource) bool { return b.count[r].Load() >= b.Max(r) }

// Remaining returns how many more units of r may be taken.
func (b *Breakers) Remaining(r Resource) uint64 {
	m, c := b.Max(r), b.count[r].Load()
	if c >= m {
		return 0
	}
	return m - c
}

// Overflows returns how many acquisitions of r were refused.
func (b *Breakers) Overflows(r Resource) uint64 { return b.overflow[r].Load() }

// Stats is a snapshot of the breakers, indexed by Resource.
type Stats struct {
	Count     [NumResources]uint64
	Max       [NumResources]uint64
	Overflows [NumResources]uint64
}

// Stats returns a snapshot of counts, limits and overflows.
func (b *Breakers) Stats() Stats {
	var s Stats
	for r := range NumResources {
		s.Count[r] = b.count[r].Load()
		s.Max[r] = b.Max(r)
		s.Overflows[r] = b.overflow[r].Load()
	}
	return s
}
