//go:build linux

package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binEnv names a prebuilt trellis binary to use instead of building
// ./cmd/trellis (for CI that builds once, or to test a given build).
const binEnv = "TRELLIS_E2E_BIN"

// trellisBin is the trellis binary TestMain builds (or binEnv names);
// buildErr says why it is missing.
var (
	trellisBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(fortioEnv); spec != "" {
		os.Exit(fortioChild(spec))
	}
	dir, err := os.MkdirTemp("", "trellis-e2e-sidecar-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if bin := os.Getenv(binEnv); bin != "" {
		trellisBin = bin
		if _, err := os.Stat(bin); err != nil {
			buildErr = fmt.Errorf("%s=%s: %w", binEnv, bin, err)
		}
	} else {
		trellisBin, buildErr = build(dir)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build runs `go build -o <dir>/trellis ./cmd/trellis` from the module root.
func build(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "trellis")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/trellis")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/trellis in %s: %v\n%s", root, err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}

// fortioChild is this binary re-executed in a namespace to run one fortio
// load (see fortioEnv): the result goes to stdout as JSON.
func fortioChild(spec string) int {
	var s fortioSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", fortioEnv, err)
		return 2
	}
	if err := runFortio(s, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
