package install

import (
	"fmt"
	"os"
	"path/filepath"
)

// crdSources are the modules that publish the CRDs and the files inside
// them: Istio's (every kind, all served versions) and the Gateway API's
// standard channel. The chart keeps them as crds/<name>.
var crdSources = []struct{ module, glob, name string }{
	{"istio.io/api", "kubernetes/customresourcedefinitions.gen.yaml", "istio.yaml"},
	{"sigs.k8s.io/gateway-api", "config/crd/standard/gateway.networking.k8s.io_*.yaml", ""},
}

// CRDSourceFiles reads the CRD files from the modules (moduleDir locates a
// module's directory, e.g. with `go list -m`), keyed by the name they have
// in the chart's crds/. Files without a CRD (the Gateway API's
// ValidatingAdmissionPolicy) are left out. It is what the generator copies
// and what the tests compare the embedded copy with.
func CRDSourceFiles(moduleDir func(string) (string, error)) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, src := range crdSources {
		dir, err := moduleDir(src.module)
		if err != nil {
			return nil, err
		}
		paths, err := filepath.Glob(filepath.Join(dir, src.glob))
		if err != nil || len(paths) == 0 {
			return nil, fmt.Errorf("no CRD files %s in module %s at %s", src.glob, src.module, dir)
		}
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("reading CRDs: %w", err)
			}
			crds, err := DecodeCRDs(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if len(crds) == 0 {
				continue
			}
			name := src.name
			if name == "" {
				name = filepath.Base(p)
			}
			out[name] = data
		}
	}
	return out, nil
}
