package pgv

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// rulesMessage builds a message type "pgvtest.Rules" whose fields carry
// rules Envoy's protos do not use (or not in a combination the generated
// configuration reaches); expected strings follow protoc-gen-validate's
// templates.
func rulesMessage(t *testing.T) protoreflect.MessageDescriptor {
	t.Helper()
	u64 := proto.Uint64
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, typeName string, rules *validate.FieldRules) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num), Type: typ.Enum(), Label: label.Enum(), JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		if rules != nil {
			f.Options = &descriptorpb.FieldOptions{}
			proto.SetExtension(f.Options, validate.E_Rules, rules)
		}
		return f
	}
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	rep := descriptorpb.FieldDescriptorProto_LABEL_REPEATED
	ty := descriptorpb.FieldDescriptorProto_TYPE_INT32
	oneofOpts := &descriptorpb.OneofOptions{}
	proto.SetExtension(oneofOpts, validate.E_Required, true)
	choiceA := field("choice_a", 12, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, "", nil)
	choiceA.OneofIndex = proto.Int32(0)
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("pgvtest/rules.proto"),
		Package:    proto.String("pgvtest"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"validate/validate.proto", "google/protobuf/duration.proto", "google/protobuf/timestamp.proto", "google/protobuf/wrappers.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("Rules"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("outside", 1, ty, opt, "", &validate.FieldRules{Type: &validate.FieldRules_Int32{Int32: &validate.Int32Rules{Lte: proto.Int32(1), Gte: proto.Int32(5)}}}),
				field("degenerate", 2, ty, opt, "", &validate.FieldRules{Type: &validate.FieldRules_Int32{Int32: &validate.Int32Rules{Lte: proto.Int32(5), Gte: proto.Int32(5)}}}),
				field("ratio", 3, descriptorpb.FieldDescriptorProto_TYPE_FLOAT, opt, "", &validate.FieldRules{Type: &validate.FieldRules_Float{Float: &validate.FloatRules{Lt: proto.Float32(1.5), Gt: proto.Float32(0.5)}}}),
				field("word", 4, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, "", &validate.FieldRules{Type: &validate.FieldRules_String_{String_: &validate.StringRules{In: []string{"a", "b"}, IgnoreEmpty: proto.Bool(true)}}}),
				field("blob", 5, descriptorpb.FieldDescriptorProto_TYPE_BYTES, opt, "", &validate.FieldRules{Type: &validate.FieldRules_Bytes{Bytes: &validate.BytesRules{Prefix: []byte("a\n"), MaxLen: u64(3)}}}),
				field("tags", 6, descriptorpb.FieldDescriptorProto_TYPE_STRING, rep, "", &validate.FieldRules{Type: &validate.FieldRules_Repeated{Repeated: &validate.RepeatedRules{Unique: proto.Bool(true), MaxItems: u64(2)}}}),
				field("host", 7, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, "", &validate.FieldRules{Type: &validate.FieldRules_String_{String_: &validate.StringRules{WellKnown: &validate.StringRules_Hostname{Hostname: true}}}}),
				field("wait", 8, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, opt, ".google.protobuf.Duration", &validate.FieldRules{Type: &validate.FieldRules_Duration{Duration: &validate.DurationRules{Required: proto.Bool(true), Gt: durationpb.New(time.Second)}}}),
				field("when", 9, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, opt, ".google.protobuf.Timestamp", &validate.FieldRules{Type: &validate.FieldRules_Timestamp{Timestamp: &validate.TimestampRules{LtNow: proto.Bool(true)}}}),
				field("wrapped", 10, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, opt, ".google.protobuf.UInt32Value", &validate.FieldRules{Type: &validate.FieldRules_Uint32{Uint32: &validate.UInt32Rules{Gt: proto.Uint32(0)}}}),
				field("mail", 11, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, "", &validate.FieldRules{Type: &validate.FieldRules_String_{String_: &validate.StringRules{WellKnown: &validate.StringRules_Email{Email: true}, IgnoreEmpty: proto.Bool(true)}}}),
				choiceA,
			},
			OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("choice"), Options: oneofOpts}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("building test descriptor: %v", err)
	}
	return fd.Messages().Get(0)
}

func TestRules(t *testing.T) {
	md := rulesMessage(t)
	// valid sets the fields whose rules reject the zero value.
	valid := func(m *dynamicpb.Message) {
		m.Set(md.Fields().ByName("wait"), protoreflect.ValueOfMessage(durationpb.New(2*time.Second).ProtoReflect()))
		m.Set(md.Fields().ByName("choice_a"), protoreflect.ValueOfString("x"))
		m.Set(md.Fields().ByName("degenerate"), protoreflect.ValueOfInt32(3))
		m.Set(md.Fields().ByName("ratio"), protoreflect.ValueOfFloat32(1))
		m.Set(md.Fields().ByName("blob"), protoreflect.ValueOfBytes([]byte("a\nb")))
		m.Set(md.Fields().ByName("host"), protoreflect.ValueOfString("ok.example"))
	}
	set := func(name string, v any) func(*dynamicpb.Message) {
		return func(m *dynamicpb.Message) {
			fd := md.Fields().ByName(protoreflect.Name(name))
			switch x := v.(type) {
			case proto.Message:
				m.Set(fd, protoreflect.ValueOfMessage(x.ProtoReflect()))
			case []string:
				l := m.Mutable(fd).List()
				for _, s := range x {
					l.Append(protoreflect.ValueOfString(s))
				}
			default:
				m.Set(fd, protoreflect.ValueOf(x))
			}
		}
	}
	cases := []struct {
		name   string
		change func(*dynamicpb.Message)
		first  string // Validate; "" for valid
		all    string // ValidateAll when different from first
	}{
		{name: "valid", change: func(*dynamicpb.Message) {}},
		{name: "inclusive outside range", change: set("outside", int32(3)), first: "invalid Rules.Outside: value must be outside range (1, 5)"},
		{name: "degenerate inclusive range accepts all", change: set("degenerate", int32(5))},
		{name: "float inside range", change: set("ratio", float32(2)), first: "invalid Rules.Ratio: value must be inside range (0.5, 1.5)"},
		{name: "string in", change: set("word", "c"), first: "invalid Rules.Word: value must be in list [a b]"},
		{name: "bytes prefix and length", change: set("blob", []byte("bcde")), first: "invalid Rules.Blob: value length must be at most 3 bytes",
			all: `invalid Rules.Blob: value length must be at most 3 bytes; invalid Rules.Blob: value does not have prefix "\x61\xA"`},
		{name: "repeated unique and max", change: set("tags", []string{"x", "x", "y"}), first: "invalid Rules.Tags: value must contain no more than 2 item(s)",
			all: "invalid Rules.Tags: value must contain no more than 2 item(s); invalid Rules.Tags[1]: repeated value must contain unique items"},
		{name: "hostname", change: set("host", "-bad"), first: "invalid Rules.Host: value must be a valid hostname | caused by: hostname parts cannot begin with hyphens"},
		{name: "duration bound", change: set("wait", durationpb.New(time.Second)), first: "invalid Rules.Wait: value must be greater than 1s"},
		{name: "duration required", change: func(m *dynamicpb.Message) { m.Clear(md.Fields().ByName("wait")) }, first: "invalid Rules.Wait: value is required"},
		{name: "invalid duration", change: set("wait", &durationpb.Duration{Seconds: 1, Nanos: -1}), first: "invalid Rules.Wait: value is not a valid duration | caused by: " + (&durationpb.Duration{Seconds: 1, Nanos: -1}).CheckValid().Error()},
		{name: "timestamp lt_now", change: set("when", timestamppb.New(time.Now().Add(time.Hour))), first: "invalid Rules.When: value must be less than now"},
		{name: "wrapper value", change: set("wrapped", wrapperspb.UInt32(0)), first: "invalid Rules.Wrapped: value must be greater than 0"},
		{name: "email", change: set("mail", "x@-y"), first: "invalid Rules.Mail: value must be a valid email address | caused by: hostname parts cannot begin with hyphens"},
		{name: "required oneof", change: func(m *dynamicpb.Message) { m.Clear(md.Fields().ByName("choice_a")) }, first: "invalid Rules.Choice: value is required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := dynamicpb.NewMessage(md)
			valid(m)
			c.change(m)
			if c.all == "" {
				c.all = c.first
			}
			for _, r := range []struct {
				name string
				err  error
				want string
			}{{"Validate", Validate(m), c.first}, {"ValidateAll", ValidateAll(m), c.all}} {
				got := ""
				if r.err != nil {
					got = r.err.Error()
				}
				if got != r.want {
					t.Errorf("%s = %q, want %q", r.name, got, r.want)
				}
			}
		})
	}
}

func TestNilAndTypedNil(t *testing.T) {
	if err := Validate(nil); err != nil {
		t.Errorf("Validate(nil) = %v", err)
	}
	if err := ValidateAll((*clusterv3.Cluster)(nil)); err != nil {
		t.Errorf("ValidateAll(nil *Cluster) = %v", err)
	}
	c := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: (*clusterv3.Cluster_Type)(nil)}
	want, got := c.Validate(), Validate(c)
	if want == nil || got == nil || want.Error() != got.Error() {
		t.Errorf("typed-nil oneof: Validate = %v, generated %v", got, want)
	}
}
