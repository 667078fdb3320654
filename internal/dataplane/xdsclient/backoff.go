package xdsclient

import "time"

// Default back-off, as Envoy's for its ADS stream.
const (
	DefaultBackoffBase       = 500 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffResetAfter = 10 * time.Second
)

// Backoff is the reconnection policy of the ADS stream: jittered
// exponential, as Envoy's JitteredExponentialBackOffStrategy.
type Backoff struct {
	// Base is the ceiling of the first delay (default 500ms).
	Base time.Duration
	// Max caps the ceiling (default 30s).
	Max time.Duration
	// ResetAfter: a stream that lived at least this long restarts the
	// sequence at the first delay (default 10s).
	ResetAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = DefaultBackoffBase
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.Max < b.Base {
		b.Max = b.Base
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = DefaultBackoffResetAfter
	}
	return b
}

// Ceiling is the upper bound of the delay before retry attempt (0-based):
// min(Base·2^attempt, Max).
func (b Backoff) Ceiling(attempt int) time.Duration {
	b = b.withDefaults()
	c := b.Base
	for i := 0; i < attempt && c < b.Max; i++ {
		c *= 2
	}
	return min(c, b.Max)
}

// Delay is the wait before retry attempt (0-based) for a uniform random u
// in [0, 1): full jitter, u·Ceiling(attempt), so the delay lies in
// [0, Ceiling(attempt)). It is a pure function; Run draws u.
func (b Backoff) Delay(attempt int, u float64) time.Duration {
	if u < 0 || u >= 1 {
		u = 0
	}
	return time.Duration(u * float64(b.Ceiling(attempt)))
}
