package gentest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// update is the conventional golden-file flag: go test ./... -update.
var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// Render returns msgs as one indented JSON array with proto field names and
// object keys sorted, so that the text is stable byte for byte (protojson's
// own output deliberately varies its whitespace).
func Render(msgs ...proto.Message) ([]byte, error) {
	parts := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("marshalling %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
		}
		parts = append(parts, b)
	}
	raw, err := json.Marshal(parts)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Golden compares msgs, rendered by Render, with testdata/<name>.golden in
// the calling package, or rewrites the file when -update is set. A
// mismatch fails the test with a line diff.
func Golden(t testing.TB, name string, msgs ...proto.Message) {
	t.Helper()
	got, err := Render(msgs...)
	if err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update to create it)", name, err)
	}
	if !bytes.Equal(want, got) {
		diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n"))
		t.Errorf("golden %s differs (-want +got; run go test -update to accept):\n%s", path, diff)
	}
}

// Validate runs the PGV rules (ValidateAll) of every message and fails the
// test on the first violation of each.
func Validate(t testing.TB, msgs ...proto.Message) {
	t.Helper()
	for _, m := range msgs {
		v, ok := m.(interface{ ValidateAll() error })
		if !ok {
			t.Errorf("%s has no PGV validation", m.ProtoReflect().Descriptor().FullName())
			continue
		}
		if err := v.ValidateAll(); err != nil {
			name := ""
			if n, ok := m.(interface{ GetName() string }); ok {
				name = n.GetName()
			} else if n, ok := m.(interface{ GetClusterName() string }); ok {
				name = n.GetClusterName()
			}
			t.Errorf("%s %q is invalid: %v", m.ProtoReflect().Descriptor().FullName(), name, err)
		}
	}
}
