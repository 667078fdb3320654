package dataplane

import (
	"os/exec"
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
