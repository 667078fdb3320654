package inject

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// PatchOp is one RFC 6902 JSON Patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch returns the JSON Patch (RFC 6902) that turns before into after,
// both encoded with encoding/json (so that fields the Go types do not know
// are neither added nor removed). Objects are compared key by key; arrays
// that differ are replaced whole, which keeps the patch valid whatever the
// array held. An empty patch is "[]".
func Patch(before, after any) ([]byte, error) {
	a, err := generic(before)
	if err != nil {
		return nil, fmt.Errorf("patch: encoding the original: %w", err)
	}
	b, err := generic(after)
	if err != nil {
		return nil, fmt.Errorf("patch: encoding the result: %w", err)
	}
	ops := diff(nil, "", a, b)
	if ops == nil {
		ops = []PatchOp{}
	}
	out, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	return out, nil
}

func generic(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var g any
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, err
	}
	return g, nil
}

func diff(ops []PatchOp, path string, a, b any) []PatchOp {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if !aok || !bok {
		if reflect.DeepEqual(a, b) {
			return ops
		}
		if b == nil {
			return append(ops, PatchOp{Op: "remove", Path: path})
		}
		return append(ops, PatchOp{Op: "replace", Path: path, Value: b})
	}
	keys := make([]string, 0, len(am)+len(bm))
	for k := range am {
		keys = append(keys, k)
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		av, inA := am[k]
		bv, inB := bm[k]
		p := path + "/" + escape(k)
		switch {
		case !inB:
			ops = append(ops, PatchOp{Op: "remove", Path: p})
		case !inA:
			if bv != nil {
				ops = append(ops, PatchOp{Op: "add", Path: p, Value: bv})
			}
		default:
			ops = diff(ops, p, av, bv)
		}
	}
	return ops
}

// escape encodes a key as a JSON Pointer reference token (RFC 6901).
func escape(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}
