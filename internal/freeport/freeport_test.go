package freeport

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestOutsideRange(t *testing.T) {
	for _, tc := range []struct {
		from, lo, hi int
		want         [][2]int
	}{
		{20000, 32768, 60999, [][2]int{{20000, 32767}, {61000, 65535}}},
		{20000, 1024, 65535, nil},
		{20000, 10000, 40000, [][2]int{{40001, 65535}}},
		{20000, 32768, 65535, [][2]int{{20000, 32767}}},
	} {
		if got := outsideRange(tc.from, tc.lo, tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("outsideRange(%d, %d, %d) = %v, want %v", tc.from, tc.lo, tc.hi, got, tc.want)
		}
	}
}

func TestEphemeralRange(t *testing.T) {
	p := filepath.Join(t.TempDir(), "range")
	if err := os.WriteFile(p, []byte("32768\t60999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if lo, hi, err := ephemeralRange(p); err != nil || lo != 32768 || hi != 60999 {
		t.Fatalf("ephemeralRange = %d, %d, %v; want 32768, 60999", lo, hi, err)
	}
	if err := os.WriteFile(p, []byte("32768\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ephemeralRange(p); err == nil {
		t.Fatal("ephemeralRange accepted one number")
	}
}

// TestPickOutsideEphemeralRange: a picked port is never one the kernel
// could give a later bind to port 0 (CI once saw trellis up's dashboard
// take a workload's port between up's check and the workload's bind).
func TestPickOutsideEphemeralRange(t *testing.T) {
	lo, hi, err := ephemeralRange(ephemeralRangeFile)
	if err != nil {
		t.Fatalf("reading the kernel's ephemeral range (Linux /proc needed): %v", err)
	}
	for range 50 {
		p, err := Pick("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if int(p) < Lowest || (int(p) >= lo && int(p) <= hi) {
			t.Fatalf("Pick = %d: inside the ephemeral range %d-%d or below %d", p, lo, hi, Lowest)
		}
	}
}
