package gctune

import (
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestLargeAndExcessive(t *testing.T) {
	c := ReleaseConfig{MinAlloc: 8 << 20, MinExcess: 4 << 20, MinPercent: 10}
	if c.Large(8<<20-1) || !c.Large(8<<20) {
		t.Errorf("Large: the threshold is MinAlloc, 8 MiB")
	}
	for _, tc := range []struct {
		name string
		heap Heap
		want bool
	}{
		{"nothing held above the goal", Heap{Held: 30 << 20, Goal: 31 << 20}, false},
		{"equal", Heap{Held: 31 << 20, Goal: 31 << 20}, false},
		{"below MinExcess", Heap{Held: 34 << 20, Goal: 31 << 20}, false},
		{"1,000 services after start-up", Heap{Held: 39 << 20, Goal: 31 << 20}, true},
		{"exactly MinExcess", Heap{Held: 35 << 20, Goal: 31 << 20}, true},
		{"above MinExcess, below MinPercent of a big goal", Heap{Held: 205 << 20, Goal: 200 << 20}, false},
		{"above both for a big goal", Heap{Held: 221 << 20, Goal: 200 << 20}, true},
		{"no goal yet", Heap{Held: 5 << 20}, true},
	} {
		if got := c.Excessive(tc.heap); got != tc.want {
			t.Errorf("%s: Excessive(held %d, goal %d) = %v, want %v", tc.name, tc.heap.Held, tc.heap.Goal, got, tc.want)
		}
	}
	if (ReleaseConfig{}).Excessive(Heap{Held: 34 << 20, Goal: 31 << 20}) {
		t.Error("defaults: 3 MiB above the goal is below DefaultReleaseMinExcess")
	}
}

func TestDue(t *testing.T) {
	c := ReleaseConfig{Quiet: time.Second, MaxDelay: 10 * time.Second, MinInterval: 30 * time.Second}
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	for _, tc := range []struct {
		name             string
		now, first, last time.Time
		want             time.Time
	}{
		{"first change: after the quiet period", at(0), at(0), time.Time{}, at(1)},
		{"burst: the quiet period restarts", at(0.5), at(0), time.Time{}, at(1.5)},
		{"churn: no later than MaxDelay after the first change", at(9.5), at(0), time.Time{}, at(10)},
		{"rate limit: not before MinInterval after the last release", at(5), at(5), at(0), at(30)},
		{"rate limit long past", at(100), at(100), at(0), at(101)},
	} {
		if got := c.Due(tc.now, tc.first, tc.last); !got.Equal(tc.want) {
			t.Errorf("%s: Due = +%v, want +%v", tc.name, got.Sub(t0), tc.want.Sub(t0))
		}
	}
}

func released() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// node is the shape of a decoded message: small pointerful objects.
type node struct {
	next *node
	data [200]byte
}

// compiled is the shape of a compiled value, in a size class of its own.
type compiled struct {
	ref  *compiled
	data [40]byte
}

// burst allocates n bytes of linked small objects, all live until it
// returns, and for every keep of them a compiled object that stays alive
// after: a configuration push's decoded messages (garbage after the
// apply) and its compiled result. (Survivors in the same size class would
// pin every span: fragmentation, which no release can return.)
func burst(n, keep int) []*compiled {
	var head *node
	var kept []*compiled
	for i := range n / 256 {
		head = &node{next: head}
		if i%keep == 0 {
			kept = append(kept, &compiled{})
		}
	}
	runtime.KeepAlive(head)
	return kept
}

func waitChecks(t *testing.T, r *Releaser, n uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.Checks() < n {
		if time.Now().After(deadline) {
			t.Fatalf("no check ran within 10s (checks %d, want %d)", r.Checks(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestReleaserReturnsTheApplyPeak: after a large apply-like allocation
// burst the Releaser collects and returns the freed heap to the OS, the
// runtime's released bytes grow by most of the burst; a small change
// costs no collection and returns nothing.
func TestReleaserReturnsTheApplyPeak(t *testing.T) {
	r := NewReleaser(ReleaseConfig{Quiet: time.Millisecond, MaxDelay: time.Millisecond, MinInterval: time.Hour})
	defer r.Stop()

	done := r.Track()
	_ = make([]byte, 1<<10)
	done()
	waitChecks(t, r, 1)
	if r.Releases() != 0 {
		t.Fatal("a 1 KiB change returned memory; only large changes may force a collection")
	}

	runtime.GC()
	before := released()
	done = r.Track()
	kept := burst(64<<20, 16)
	done()
	waitChecks(t, r, 2)
	after := released()
	if r.Releases() != 1 {
		t.Fatalf("a 64 MiB burst was not returned (releases %d, heap %+v)", r.Releases(), ReadHeap())
	}
	if after < before+32<<20 {
		t.Errorf("released bytes grew by %d MiB after a 64 MiB burst, want ≥ 32 MiB", (int64(after)-int64(before))>>20)
	}
	t.Logf("released %d → %d MiB", before>>20, after>>20)
	runtime.KeepAlive(kept)

	// Within MinInterval of that release, another large change is not
	// checked yet.
	done = r.Track()
	kept = burst(32<<20, 16)
	done()
	time.Sleep(20 * time.Millisecond)
	if r.Checks() != 2 || r.Releases() != 1 {
		t.Errorf("within MinInterval: checks %d releases %d, want 2 and 1", r.Checks(), r.Releases())
	}
	runtime.KeepAlive(kept)
}

// TestSettled: the hook runs after the first check (the start-up
// configuration, however small) and after later checks of large changes
// only.
func TestSettled(t *testing.T) {
	var runs atomic.Int32
	r := NewReleaser(ReleaseConfig{Quiet: time.Millisecond, MaxDelay: time.Millisecond, MinInterval: time.Hour, Settled: func() { runs.Add(1) }})
	defer r.Stop()
	for i := range 3 {
		r.Track()()
		waitChecks(t, r, uint64(i+1))
	}
	if got := runs.Load(); got != 1 {
		t.Fatalf("Settled ran %d times over a first and two small changes, want 1", got)
	}
	done := r.Track()
	kept := burst(16<<20, 16)
	done()
	waitChecks(t, r, 4)
	runtime.KeepAlive(kept)
	if got := runs.Load(); got != 2 {
		t.Fatalf("Settled ran %d times after a large change, want 2", got)
	}
}
