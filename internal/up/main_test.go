package up

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/testing/trellisbin"
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
	trellisBin, buildErr = trellisbin.Get(dir, binEnv)
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
