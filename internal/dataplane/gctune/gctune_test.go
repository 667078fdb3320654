package gctune

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	c := Config{Headroom: 16 << 20}
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 400},
		{1 << 20, 400},  // 1600 clamped
		{4 << 20, 400},  // exactly the ceiling
		{8 << 20, 200},  // goal 24 MiB
		{16 << 20, 100}, // Go's default
		{32 << 20, 50},
		{64 << 20, 25},
		{512 << 20, 25}, // floor
	} {
		if got := c.Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
	if got := (Config{Headroom: 1 << 20, MinPercent: 50, MaxPercent: 10}).Percent(64 << 20); got != 50 {
		t.Errorf("max below min: got %d, want the min 50", got)
	}
}

// TestPercentMinGoal: the floor on the heap goal wins over live+Headroom
// while it is higher, whatever MaxPercent says, and stops mattering once
// the live heap plus Headroom passes it.
func TestPercentMinGoal(t *testing.T) {
	c := Config{Headroom: 8 << 20, MinGoal: 20 << 20}
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 400},        // nothing measured: MaxPercent, not a goal of 20× the runtime's first one
		{1 << 20, 1900}, // goal 20 MiB, over MaxPercent
		{4 << 20, 400},  // goal 20 MiB
		{5 << 20, 300},  // goal 20 MiB (live+Headroom would be 13)
		{12 << 20, 66},  // live+Headroom = 20 MiB: the same goal either way
		{16 << 20, 50},  // goal 24 MiB: Headroom decides
		{64 << 20, 25},  // MinPercent
	} {
		if got := c.Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
	if got := (Config{Headroom: 8 << 20}).Percent(5 << 20); got != 160 {
		t.Errorf("without MinGoal: Percent(5 MiB) = %d, want 160", got)
	}
}

func TestStartRespectsGOGC(t *testing.T) {
	env := func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	}
	if tu := Start(Config{}, env); tu != nil {
		tu.Stop()
		t.Fatal("Start with GOGC set returned a Tuner; the operator's GOGC must win")
	}
}

// TestTunerFollowsLiveHeap runs the real hook: after collections the
// percentage follows the live heap, growing it makes the percentage fall,
// and Stop restores Go's default.
func TestTunerFollowsLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := Start(Config{Headroom: 8 << 20}, func(string) string { return "" })
	if tu == nil {
		t.Fatal("Start returned nil without GOGC set")
	}
	defer tu.Stop()
	waitRuns := func(after uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for tu.Runs() <= after {
			if time.Now().After(deadline) {
				t.Fatalf("the tuner did not run after a GC (runs %d)", tu.Runs())
			}
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitRuns(tu.Runs())
	small := tu.Percent()
	if small < 100 {
		t.Fatalf("with a small live heap the percentage is %d, want ≥ 100 (headroom 8 MiB)", small)
	}
	if got := debug.SetGCPercent(small); got != small {
		t.Fatalf("runtime GC percent is %d, the tuner says %d", got, small)
	}
	// 64 MiB of live pointer-free data: goal live+8 MiB is ~12 %, clamped
	// to the 25 % floor.
	ballast := make([][]byte, 64)
	for i := range ballast {
		ballast[i] = make([]byte, 1<<20)
	}
	waitRuns(tu.Runs())
	waitRuns(tu.Runs())
	if got := tu.Percent(); got != DefaultMinPercent {
		t.Fatalf("with 64 MiB live the percentage is %d, want the floor %d", got, DefaultMinPercent)
	}
	runtime.KeepAlive(ballast)
	tu.Stop()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("after Stop the GC percent is %d, want 100", got)
	}
}
