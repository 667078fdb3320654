package dataplane

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// forbidden are import path prefixes the data plane must never link: the
// Kubernetes client libraries and the control plane.
var forbidden = []string{
	"k8s.io/client-go",
	"k8s.io/apimachinery",
	"sigs.k8s.io/controller-runtime",
	"istio.io/client-go",
	"github.com/trellismesh/trellis/internal/config",
	"github.com/trellismesh/trellis/internal/model",
	"github.com/trellismesh/trellis/internal/xds",
	"github.com/trellismesh/trellis/internal/discovery",
	"github.com/trellismesh/trellis/internal/registry",
	"github.com/trellismesh/trellis/internal/analysis",
}

// TestNoControlPlaneDependencies lists the (non-test) dependencies of every
// data-plane package and of the slim proxy binary, and fails on any forbidden one, naming the chain's end.
func TestNoControlPlaneDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/trellismesh/trellis/internal/dataplane/...",
		"github.com/trellismesh/trellis/cmd/trellis-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps returned nothing")
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("the data plane depends on %s (forbidden prefix %s); find the importer with: go list -deps -f '{{.ImportPath}}: {{.Imports}}' ./internal/dataplane/... | grep %s", d, f, d)
			}
		}
	}
}

// proxyForbidden are packages the slim proxy binary must not link for their
// size: every linked package's code, type data and initialisers stay
// resident in each sidecar. html/template, from gRPC's
// golang.org/x/net/trace unless built with -tags grpcnotrace, executes
// templates by reflection, for which the linker keeps every exported
// method of every linked type: 8 MB of the binary, ~3 MB resident.
var proxyForbidden = []string{
	"html/template",
	"golang.org/x/net/trace",
}

// imageBuildTags returns the -tags of the go build of cmd/trellis-proxy in
// build/Dockerfile.proxy, so that the dependencies checked are those of
// the binary the proxy image ships.
func imageBuildTags(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "build", "Dockerfile.proxy"))
	if err != nil {
		t.Fatalf("reading the proxy image's Dockerfile: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if !slices.Contains(f, "go") || !slices.Contains(f, "build") || !slices.Contains(f, "./cmd/trellis-proxy") {
			continue
		}
		for i, a := range f {
			if a == "-tags" && i+1 < len(f) {
				return f[i+1]
			}
			if v, ok := strings.CutPrefix(a, "-tags="); ok {
				return v
			}
		}
		return ""
	}
	t.Fatal("build/Dockerfile.proxy has no `go build ... ./cmd/trellis-proxy` line")
	return ""
}

// TestProxyBinaryDependencies fails when cmd/trellis-proxy, built with the
// proxy image's tags, links a package of proxyForbidden, naming the
// packages that import it.
func TestProxyBinaryDependencies(t *testing.T) {
	tags := imageBuildTags(t)
	if tags == "" {
		t.Fatal("build/Dockerfile.proxy builds cmd/trellis-proxy without -tags grpcnotrace, which links html/template through gRPC")
	}
	out, err := exec.Command("go", "list", "-deps", "-tags", tags, "-f", "{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}",
		"github.com/trellismesh/trellis/cmd/trellis-proxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps -tags %s: %v\n%s", tags, err, out)
	}
	importers := map[string][]string{}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		n++
		for _, imp := range strings.Fields(imports) {
			importers[imp] = append(importers[imp], pkg)
		}
	}
	if n < 10 {
		t.Fatalf("go list -deps returned %d packages:\n%s", n, out)
	}
	for _, f := range proxyForbidden {
		if by, ok := importers[f]; ok {
			t.Errorf("cmd/trellis-proxy (-tags %s) links %s, imported by %s", tags, f, strings.Join(by, ", "))
		}
	}
}
