// Package trellisbin gives tests that run real trellis processes the
// module root and a trellis binary: built once from ./cmd/trellis, or one
// a named environment variable points at (CI that builds once, or a given
// build under test).
package trellisbin

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ModuleRoot returns the directory holding go.mod at or above the working
// directory (a test's package directory).
func ModuleRoot() (string, error) {
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

// Build runs `go build -o out ./cmd/trellis` from the module root.
func Build(out string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/trellis")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/trellis in %s: %v\n%s", root, err, b)
	}
	return nil
}

// Get returns the binary the environment variable env names, if set and
// present, or builds one into dir/trellis.
func Get(dir, env string) (string, error) {
	if bin := os.Getenv(env); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return bin, fmt.Errorf("%s=%s: %w", env, bin, err)
		}
		return bin, nil
	}
	bin := filepath.Join(dir, "trellis")
	return bin, Build(bin)
}
