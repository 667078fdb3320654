package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Size bounds of the stripped slim binary (-ldflags "-s -w"). The floor
// catches a build that lost the engine; the ceiling catches the proxy
// pulling in the world (a Kubernetes client adds tens of megabytes).
// Measured 2026-11-21: 23.9 MB.
const (
	minSize = 10 << 20
	maxSize = 32 << 20
)

func TestBinarySize(t *testing.T) {
	out := filepath.Join(t.TempDir(), "trellis-proxy")
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trellis-proxy (stripped): %.1f MB", float64(st.Size())/(1<<20))
	if st.Size() < minSize || st.Size() > maxSize {
		t.Errorf("stripped binary is %.1f MB; want between %d and %d MB", float64(st.Size())/(1<<20), minSize>>20, maxSize>>20)
	}
}
