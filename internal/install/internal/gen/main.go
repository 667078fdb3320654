// Command gen writes the generated parts of the Helm chart (run by
// `go generate ./internal/install`): crds/, copied from the istio.io/api
// and sigs.k8s.io/gateway-api modules in the module cache at the versions
// in go.mod, and templates/trellis.yaml, rendered by install.ChartTemplate.
//
// Usage: go run ./internal/gen <chart-dir>
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/trellismesh/trellis/internal/install"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen <chart-dir>")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(chartDir string) error {
	crdDir := filepath.Join(chartDir, "crds")
	if err := os.RemoveAll(crdDir); err != nil {
		return err
	}
	if err := os.MkdirAll(crdDir, 0o755); err != nil {
		return err
	}
	files, err := install.CRDSourceFiles(moduleDir)
	if err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(crdDir, name), data, 0o644); err != nil {
			return err
		}
	}
	// This binary embeds the crds/ of before this run (the chart package
	// must compile, so bootstrap an empty checkout by copying the files
	// once); the template leaves the CRDs out, so that does not matter.
	tmpl, err := install.ChartTemplate()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(chartDir, "templates", "trellis.yaml"), tmpl, 0o644)
}

func moduleDir(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("locating module %s: %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s is not downloaded: run go mod download %s", module, module)
	}
	return dir, nil
}
