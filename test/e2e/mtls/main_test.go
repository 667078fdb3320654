//go:build linux

package mtls

import (
	"fmt"
	"os"
	"testing"

	"github.com/trellismesh/trellis/internal/testing/trellisbin"
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
	trellisBin, buildErr = trellisbin.Get(dir, binEnv)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
