package pgv

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// generated is the PGV code protoc-gen-validate wrote for a message.
type generated interface {
	Validate() error
	ValidateAll() error
}

// disagreement compares Validate and ValidateAll with the generated
// methods of m; it returns a description of the first difference, or "".
func disagreement(m proto.Message) string {
	g, ok := m.(generated)
	if !ok {
		return ""
	}
	for _, c := range []struct {
		name      string
		want, got func() error
	}{
		{"Validate", g.Validate, func() error { return Validate(m) }},
		{"ValidateAll", g.ValidateAll, func() error { return ValidateAll(m) }},
	} {
		want, got := errString(c.want()), errString(c.got())
		if want != got {
			return c.name + ":\n  generated: " + want + "\n  pgv:       " + got
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return "error: " + err.Error()
}

func TestGeneratedConfigAgrees(t *testing.T) {
	msgs := corpus(t)
	types := map[string]int{}
	for _, m := range msgs {
		types[string(m.ProtoReflect().Descriptor().FullName())]++
		if d := disagreement(m); d != "" {
			t.Errorf("%s: %s", m.ProtoReflect().Descriptor().FullName(), d)
		}
		if err := Validate(m); err != nil {
			t.Errorf("generated %s is invalid: %v", m.ProtoReflect().Descriptor().FullName(), err)
		}
	}
	if len(msgs) < 50 || len(types) < 10 {
		t.Fatalf("corpus too small: %d messages of %d types", len(msgs), len(types))
	}
	t.Logf("%d generated messages of %d top-level types agree", len(msgs), len(types))
}

func protoregistryFind(md protoreflect.MessageDescriptor) (protoreflect.MessageType, error) {
	return protoregistry.GlobalTypes.FindMessageByName(md.FullName())
}
