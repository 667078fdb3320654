package pgv

import (
	"reflect"
	"testing"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestNamesAndMethodsMatchGeneratedCode checks, for every message type
// linked into the test binary, that hasValidate predicts the presence of
// the generated methods and that the Go names used in error strings are
// the generated type's and struct fields' names.
func TestNamesAndMethodsMatchGeneratedCode(t *testing.T) {
	n := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		md := mt.Descriptor()
		msg := mt.Zero().Interface()
		_, has := msg.(generated)
		ignored := proto.GetExtension(md.Options(), validate.E_Ignored).(bool)
		if want := hasValidate(md) && !ignored; has != want {
			t.Errorf("%s: generated methods %v, predicted %v", md.FullName(), has, want)
		}
		if !has {
			return true
		}
		n++
		rt := reflect.TypeOf(msg).Elem()
		if got := goTypeName(md); got != rt.Name() {
			t.Errorf("%s: Go type name %q, generated %q", md.FullName(), got, rt.Name())
		}
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			name := goCamelCase(string(fd.Name()))
			if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
				name = goCamelCase(string(od.Name()))
			}
			if _, ok := rt.FieldByName(name); !ok {
				t.Errorf("%s.%s: no Go field %q", md.FullName(), fd.Name(), name)
			}
		}
		return true
	})
	if n < 100 {
		t.Fatalf("only %d message types with generated methods linked", n)
	}
	t.Logf("%d message types checked", n)
}
