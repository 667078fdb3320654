//go:build linux

package sidecar

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/trellismesh/trellis/internal/testing/trellisbin"
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
	trellisBin, buildErr = trellisbin.Get(dir, binEnv)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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
