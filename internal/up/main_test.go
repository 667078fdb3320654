package up

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// binEnv names a prebuilt trellis binary to use instead of building
// ./cmd/trellis.
const binEnv = "TRELLIS_UP_BIN"

// trellisBin is the binary TestMain built (or binEnv names); buildErr says
// why it is missing.
var (
	trellisBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trellis-up-test-")
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
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary returns the trellis binary or fails the test saying why.
func binary(t *testing.T) string {
	t.Helper()
	if buildErr != nil {
		t.Fatalf("no trellis binary (needs the Go toolchain to build ./cmd/trellis): %v", buildErr)
	}
	return trellisBin
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
