package kube

import (
	"os/exec"
	"strings"
	"testing"
)

// clientLibraries are the Kubernetes client modules only internal/kube (and
// its subpackages) may import directly.
var clientLibraries = []string{
	"k8s.io/client-go",
	"istio.io/client-go/pkg/clientset",
	"istio.io/client-go/pkg/informers",
	"istio.io/client-go/pkg/listers",
	"sigs.k8s.io/gateway-api/pkg/client",
	"k8s.io/apiextensions-apiserver/pkg/client",
}

// TestOnlyKubeImportsClientLibraries lists the (non-test) imports of every
// package of the module and fails when a package outside internal/kube
// imports a Kubernetes client library itself.
func TestOnlyKubeImportsClientLibraries(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}",
		"github.com/trellismesh/trellis/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const own = "github.com/trellismesh/trellis/internal/kube"
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("go list returned %d packages", len(lines))
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg := fields[0]
		if pkg == own || strings.HasPrefix(pkg, own+"/") {
			continue
		}
		for _, imp := range fields[1:] {
			for _, lib := range clientLibraries {
				if imp == lib || strings.HasPrefix(imp, lib+"/") {
					t.Errorf("%s imports %s: Kubernetes clients belong in internal/kube", pkg, imp)
				}
			}
		}
	}
}
