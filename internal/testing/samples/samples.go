package samples

import (
	"os"
	"path/filepath"
	"testing"
)

// where describes the expected location in failure messages.
const where = "<module root>/../shared/data/istio-samples"

// Dir returns the absolute path of the Istio samples directory,
// <module root>/../shared/data/istio-samples.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("locating the Istio samples: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("locating the Istio samples (expected at %s): no go.mod above the test directory", where)
		}
		dir = parent
	}
	samples := filepath.Join(filepath.Dir(dir), "shared", "data", "istio-samples")
	if _, err := os.Stat(samples); err != nil {
		t.Fatalf("Istio samples not found at %s (expected at %s, beside the repository): %v", samples, where, err)
	}
	return samples
}

// Path returns the absolute path of rel (slash-separated, for example
// "bookinfo/networking/destination-rule-all.yaml") among the Istio samples.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Dir(t), filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("Istio sample %s not found at %s (expected under %s): %v", rel, p, where, err)
	}
	return p
}
