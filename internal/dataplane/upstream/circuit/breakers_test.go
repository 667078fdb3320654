package circuit_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
)

func TestDefaults(t *testing.T) {
	b := circuit.New(circuit.DefaultThresholds())
	want := map[circuit.Resource]uint64{
		circuit.Connections: 1024, circuit.PendingRequests: 1024, circuit.Requests: 1024,
		circuit.Retries: 3, circuit.ConnectionPools: circuit.Unlimited,
	}
	for r, w := range want {
		if got := b.Max(r); got != w {
			t.Errorf("%s: max %d, want %d", r, got, w)
		}
	}
}

func TestOverflow(t *testing.T) {
	cases := []struct {
		resource circuit.Resource
		overflow circuit.Overflow
		stat     string
		flag     string
	}{
		{circuit.Connections, circuit.ConnectionOverflow, "upstream_cx_overflow", ""},
		{circuit.PendingRequests, circuit.PendingRequestOverflow, "upstream_rq_pending_overflow", "UO"},
		{circuit.Requests, circuit.RequestOverflow, "upstream_rq_pending_overflow", "UO"},
		{circuit.Retries, circuit.RetryOverflow, "upstream_rq_retry_overflow", ""},
		{circuit.ConnectionPools, circuit.ConnectionPoolOverflow, "upstream_cx_pool_overflow", ""},
	}
	for _, tc := range cases {
		t.Run(tc.resource.String(), func(t *testing.T) {
			b := circuit.New(circuit.Thresholds{
				MaxConnections: 2, MaxPendingRequests: 2, MaxRequests: 2, MaxRetries: 2, MaxConnectionPools: 2,
			})
			for i := range 2 {
				if err := b.TryAcquire(tc.resource); err != nil {
					t.Fatalf("acquire %d: %v", i, err)
				}
			}
			if !b.Open(tc.resource) || b.Remaining(tc.resource) != 0 {
				t.Errorf("open %v remaining %d at the limit", b.Open(tc.resource), b.Remaining(tc.resource))
			}
			err := b.TryAcquire(tc.resource)
			var o circuit.Overflow
			if !errors.As(err, &o) || o != tc.overflow || !errors.Is(err, tc.overflow) {
				t.Fatalf("third acquire: %v, want %v", err, tc.overflow)
			}
			if o.Resource() != tc.resource || o.Stat() != tc.stat || o.ResponseFlag() != tc.flag {
				t.Errorf("overflow %v: resource %v stat %q flag %q", o, o.Resource(), o.Stat(), o.ResponseFlag())
			}
			if b.Overflows(tc.resource) != 1 || b.Count(tc.resource) != 2 {
				t.Errorf("overflows %d count %d", b.Overflows(tc.resource), b.Count(tc.resource))
			}
			b.Release(tc.resource)
			if err := b.TryAcquire(tc.resource); err != nil {
				t.Errorf("acquire after release: %v", err)
			}
			b.Release(tc.resource)
			b.Release(tc.resource)
			b.Release(tc.resource) // unbalanced: stays at 0
			if b.Count(tc.resource) != 0 {
				t.Errorf("count %d after releasing all", b.Count(tc.resource))
			}
		})
	}
}

// TestRetryBudget: retries are limited to budget% of active plus pending
// requests, but never below min_retry_concurrency.
func TestRetryBudget(t *testing.T) {
	th := circuit.DefaultThresholds()
	th.RetryBudget = &circuit.RetryBudget{Percent: 25, MinConcurrency: 2}
	b := circuit.New(th)
	if got := b.Max(circuit.Retries); got != 2 {
		t.Errorf("idle: max retries %d, want min concurrency 2", got)
	}
	for range 30 {
		if err := b.TryAcquire(circuit.Requests); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		if err := b.TryAcquire(circuit.PendingRequests); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Max(circuit.Retries); got != 10 {
		t.Errorf("40 in flight: max retries %d, want 10", got)
	}
	for range 10 {
		if err := b.TryAcquire(circuit.Retries); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.TryAcquire(circuit.Retries); !errors.Is(err, circuit.RetryOverflow) {
		t.Errorf("11th retry: %v", err)
	}
}

// TestConcurrentAcquire: the count never passes the limit (-race).
func TestConcurrentAcquire(t *testing.T) {
	b := circuit.New(circuit.Thresholds{MaxRequests: 10})
	var inFlight, peak, overflows atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				if err := b.TryAcquire(circuit.Requests); err != nil {
					overflows.Add(1)
					continue
				}
				n := inFlight.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				inFlight.Add(-1)
				b.Release(circuit.Requests)
			}
		})
	}
	wg.Wait()
	if peak.Load() > 10 {
		t.Errorf("peak %d over the limit 10", peak.Load())
	}
	if uint64(overflows.Load()) != b.Overflows(circuit.Requests) || b.Count(circuit.Requests) != 0 {
		t.Errorf("overflows %d/%d count %d", overflows.Load(), b.Overflows(circuit.Requests), b.Count(circuit.Requests))
	}
}
