package gentest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name              string            `json:"name"`
		Namespace         string            `json:"namespace"`
		Labels            map[string]string `json:"labels"`
		Annotations       map[string]string `json:"annotations"`
		CreationTimestamp string            `json:"creationTimestamp"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// Decode parses the Istio objects of a multi-document YAML stream. Objects
// without a namespace land in "default"; objects without a creation
// timestamp are stamped one second apart in file order, so that Istio's
// "oldest first" rules follow the order of the fixture.
func Decode(source string, data []byte) ([]config.Config, error) {
	return decode(source, data, 0)
}

// stamp is the creation time given to the seq-th object without one.
func stamp(seq int) time.Time {
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Second)
}

func decode(source string, data []byte, seq int) ([]config.Config, error) {
	set := schema.Istio()
	var out []config.Config
	for i, doc := range splitDocuments(data) {
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", source, i+1, err)
		}
		if string(js) == "null" {
			continue
		}
		var obj object
		if err := json.Unmarshal(js, &obj); err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", source, i+1, err)
		}
		group, version, _ := strings.Cut(obj.APIVersion, "/")
		sch, ok := set.Find(group, version, obj.Kind)
		if !ok {
			return nil, fmt.Errorf("%s (document %d): unknown kind %s %s", source, i+1, obj.APIVersion, obj.Kind)
		}
		spec := sch.New()
		if len(obj.Spec) > 0 {
			var raw any
			dec := json.NewDecoder(bytes.NewReader(obj.Spec))
			dec.UseNumber() // keep 64-bit integers exact
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("%s (document %d): %s %s: spec: %w", source, i+1, obj.Kind, obj.Metadata.Name, err)
			}
			specJSON, err := json.Marshal(normalizeDurations(raw, spec.ProtoReflect().Descriptor()))
			if err != nil {
				return nil, err
			}
			if err := protojson.Unmarshal(specJSON, spec); err != nil {
				return nil, fmt.Errorf("%s (document %d): %s %s: spec: %w", source, i+1, obj.Kind, obj.Metadata.Name, err)
			}
		}
		ns := obj.Metadata.Namespace
		if ns == "" {
			ns = config.DefaultNamespace
		}
		created := stamp(seq + len(out))
		if obj.Metadata.CreationTimestamp != "" {
			if created, err = time.Parse(time.RFC3339, obj.Metadata.CreationTimestamp); err != nil {
				return nil, fmt.Errorf("%s (document %d): creationTimestamp: %w", source, i+1, err)
			}
		}
		out = append(out, config.Config{
			Meta: config.Meta{
				Kind:              sch.GroupKind,
				Version:           version,
				Name:              obj.Metadata.Name,
				Namespace:         ns,
				Labels:            obj.Metadata.Labels,
				Annotations:       obj.Metadata.Annotations,
				CreationTimestamp: created,
			},
			Spec:   spec,
			Source: config.Source{File: source, Document: i + 1},
		})
	}
	return out, nil
}

func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimRight(line, " \t\r\n"); bytes.Equal(t, []byte("---")) {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

// ReadFiles decodes YAML files; untimestamped objects are ordered as they
// appear across the files.
func ReadFiles(paths ...string) ([]config.Config, error) {
	var out []config.Config
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		cfgs, err := decode(p, data, len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, cfgs...)
	}
	return out, nil
}
