package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	chart "github.com/trellismesh/trellis/manifests/charts/trellis"
)

var crdResource = gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions")

// CRDs returns Istio's and the Gateway API's CustomResourceDefinitions as
// embedded in the binary (the Helm chart's crds/ directory, generated from
// the modules in go.mod by `go generate ./internal/install`). Documents of
// other kinds are left out.
func CRDs() ([]Object, error) {
	return crdsFrom(chart.CRDs, "crds")
}

func crdsFrom(fsys fs.FS, dir string) ([]Object, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading embedded CRDs: %w", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	var out []Object
	for _, n := range names {
		data, err := fs.ReadFile(fsys, dir+"/"+n)
		if err != nil {
			return nil, fmt.Errorf("reading embedded CRDs: %w", err)
		}
		objs, err := DecodeCRDs(data)
		if err != nil {
			return nil, fmt.Errorf("CRD file %s: %w", n, err)
		}
		out = append(out, objs...)
	}
	if len(out) == 0 {
		return nil, errors.New("no CRDs embedded: run go generate ./internal/install")
	}
	return out, nil
}

// DecodeCRDs reads the CustomResourceDefinitions of a multi-document YAML
// file, skipping documents of other kinds.
func DecodeCRDs(data []byte) ([]Object, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []Object
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decoding: %w", err)
		}
		u := &unstructured.Unstructured{Object: m}
		if m == nil || u.GetKind() != "CustomResourceDefinition" || u.GetName() == "" {
			continue
		}
		delete(m, "status")
		out = append(out, Object{Resource: crdResource, Object: u})
	}
}
