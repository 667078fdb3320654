package main

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestProbeWake measures both round trips and checks that the probe's
// CPU binding stays on its own threads: the caller's thread (whose
// affinity the processes proxybench starts would inherit) keeps its mask.
func TestProbeWake(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.CPUSet
	if err := unix.SchedGetaffinity(0, &before); err != nil {
		t.Fatal(err)
	}
	p, err := probeWake(400)
	if err != nil {
		t.Fatal(err)
	}
	if p.SameCPUMicros <= 0 || p.SameCPUMicros > 10_000 {
		t.Errorf("same-CPU round trip %.1f µs, want a positive figure under 10 ms", p.SameCPUMicros)
	}
	if before.Count() > 1 && (p.CrossCPUMicros <= 0 || p.CrossCPUMicros > 10_000) {
		t.Errorf("cross-CPU round trip %.1f µs with %d CPUs allowed, want a positive figure under 10 ms", p.CrossCPUMicros, before.Count())
	}
	if err := unix.SchedGetaffinity(0, &after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("the caller's affinity changed: %d CPUs before, %d after", before.Count(), after.Count())
	}
	t.Logf("wake-up round trip: %.1f µs on one CPU, %.1f µs across two", p.SameCPUMicros, p.CrossCPUMicros)
}
