package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Size bounds of the stripped slim binary as the proxy image builds it
// (CGO_ENABLED=0, -trimpath, -ldflags "-s -w", -tags grpcnotrace). The
// floor catches a build that lost the engine; the ceiling catches the
// proxy pulling in the world (a Kubernetes client adds tens of megabytes;
// gRPC's request tracing, through html/template, 8 MB; a call to a
// generated PGV Validate/ValidateAll method links all of them, 4.5 MB:
// validation goes through internal/dataplane/pgv). Measured 2026-11-21:
// 23.9 MB without the tag; 2026-11-22: 22.3 MB with it (30.8 MB without),
// 18.1 MB once the generated validation was no longer linked.
const (
	minSize = 10 << 20
	maxSize = 21 << 20
)

func TestBinarySize(t *testing.T) {
	out := filepath.Join(t.TempDir(), "trellis-proxy")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags=-s -w", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
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

// TestFullCLIForm runs the built binary both ways the proxy image is
// called: `trellis-proxy sidecar` and the injector's `trellis proxy
// sidecar` (the image installs this binary as trellis).
func TestFullCLIForm(t *testing.T) {
	out := filepath.Join(t.TempDir(), "trellis")
	if b, err := exec.Command("go", "build", "-o", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	for _, args := range [][]string{{"sidecar", "--help"}, {"proxy", "sidecar", "--help"}, {"proxy", "iptables", "--help"}, {"proxy", "wait", "--help"}} {
		b, err := exec.Command(out, args...).CombinedOutput()
		if err != nil {
			t.Errorf("trellis %v: %v\n%s", args, err, b)
			continue
		}
		if !strings.Contains(string(b), "Usage:") || !strings.Contains(string(b), args[len(args)-2]) {
			t.Errorf("trellis %v: not the %s command's help:\n%s", args, args[len(args)-2], b)
		}
	}
	if b, err := exec.Command(out, "discovery").CombinedOutput(); err == nil {
		t.Errorf("trellis discovery ran on the slim binary:\n%s", b)
	}
}
