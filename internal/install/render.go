package install

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// Render writes objs as one multi-document YAML stream.
func Render(objs []Object) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		data, err := yaml.Marshal(o.Object.Object)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", o, err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return b.Bytes(), nil
}

// WithoutCRDs returns objs minus the CustomResourceDefinitions.
func WithoutCRDs(objs []Object) []Object {
	var out []Object
	for _, o := range objs {
		if o.Resource != crdResource {
			out = append(out, o)
		}
	}
	return out
}

// IsCRD reports whether o is a CustomResourceDefinition.
func (o Object) IsCRD() bool { return o.Resource == crdResource }
