//go:build linux

package mtls

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// binEnv names a prebuilt trellis binary to use instead of building
// ./cmd/trellis.
const binEnv = "TRELLIS_E2E_BIN"

var (
	trellisBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trellis-e2e-mtls-")
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
	root, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", fmt.Errorf("no go.mod above the test directory")
		}
		root = parent
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
