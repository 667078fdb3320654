package pgv

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// step leads from a message to one inside it.
type step struct {
	fd  protoreflect.FieldDescriptor
	i   int                 // list index
	key protoreflect.MapKey // map key (when fd.IsMap())
}

func follow(m protoreflect.Message, path []step) protoreflect.Message {
	for _, s := range path {
		v := m.Get(s.fd)
		switch {
		case s.fd.IsList():
			m = v.List().Get(s.i).Message()
		case s.fd.IsMap():
			m = v.Map().Get(s.key).Message()
		default:
			m = v.Message()
		}
	}
	return m
}

// positions lists the path of every message set inside m, m first.
func positions(m protoreflect.Message, path []step, fn func([]step, protoreflect.Message)) {
	fn(path, m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		sub := func(s step, sm protoreflect.Message) {
			positions(sm, append(append([]step(nil), path...), s), fn)
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				sub(step{fd: fd, i: i}, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				sub(step{fd: fd, key: k}, mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			sub(step{fd: fd}, v.Message())
		}
		return true
	})
}

// mutation changes one field of a message.
type mutation struct {
	name  string
	apply func(m protoreflect.Message, fd protoreflect.FieldDescriptor)
}

var badStrings = []string{"", "a", "bad\x00header\r\n", "ünïcödé", strings.Repeat("x", 300), "10.0.0.1", "::1", "not a host!", "http://example.com/x", "CONNECT", "UNSPECIFIED"}

// scalarValues are the boundary and invalid values tried for a field of
// fd's kind.
func scalarValues(fd protoreflect.FieldDescriptor) []protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return []protoreflect.Value{protoreflect.ValueOfBool(true), protoreflect.ValueOfBool(false)}
	case protoreflect.EnumKind:
		return []protoreflect.Value{protoreflect.ValueOfEnum(0), protoreflect.ValueOfEnum(1), protoreflect.ValueOfEnum(2), protoreflect.ValueOfEnum(99999), protoreflect.ValueOfEnum(-1)}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return []protoreflect.Value{protoreflect.ValueOfInt32(0), protoreflect.ValueOfInt32(-1), protoreflect.ValueOfInt32(1), protoreflect.ValueOfInt32(100), protoreflect.ValueOfInt32(math.MaxInt32), protoreflect.ValueOfInt32(math.MinInt32)}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return []protoreflect.Value{protoreflect.ValueOfInt64(0), protoreflect.ValueOfInt64(-1), protoreflect.ValueOfInt64(1), protoreflect.ValueOfInt64(math.MaxInt64), protoreflect.ValueOfInt64(math.MinInt64)}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return []protoreflect.Value{protoreflect.ValueOfUint32(0), protoreflect.ValueOfUint32(1), protoreflect.ValueOfUint32(100), protoreflect.ValueOfUint32(65536), protoreflect.ValueOfUint32(math.MaxUint32)}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return []protoreflect.Value{protoreflect.ValueOfUint64(0), protoreflect.ValueOfUint64(1), protoreflect.ValueOfUint64(math.MaxUint64)}
	case protoreflect.FloatKind:
		return []protoreflect.Value{protoreflect.ValueOfFloat32(0), protoreflect.ValueOfFloat32(-1), protoreflect.ValueOfFloat32(float32(math.NaN())), protoreflect.ValueOfFloat32(101), protoreflect.ValueOfFloat32(float32(math.Inf(1)))}
	case protoreflect.DoubleKind:
		return []protoreflect.Value{protoreflect.ValueOfFloat64(0), protoreflect.ValueOfFloat64(-1), protoreflect.ValueOfFloat64(math.NaN()), protoreflect.ValueOfFloat64(0.5), protoreflect.ValueOfFloat64(101), protoreflect.ValueOfFloat64(math.Inf(-1))}
	case protoreflect.StringKind:
		vs := make([]protoreflect.Value, len(badStrings))
		for i, s := range badStrings {
			vs[i] = protoreflect.ValueOfString(s)
		}
		return vs
	case protoreflect.BytesKind:
		return []protoreflect.Value{protoreflect.ValueOfBytes(nil), protoreflect.ValueOfBytes([]byte{0}), protoreflect.ValueOfBytes([]byte{127, 0, 0, 1})}
	}
	return nil
}

// messageValues are the values tried for a message field: an empty
// message, and for well-known types zero, negative, invalid and wrapped
// boundary values.
func messageValues(md protoreflect.MessageDescriptor) []func() protoreflect.Message {
	empty := func() protoreflect.Message { return messageNew(md) }
	out := []func() protoreflect.Message{empty}
	switch md.FullName() {
	case "google.protobuf.Duration":
		for _, d := range []*durationpb.Duration{{Seconds: -1}, {Nanos: 1}, {Seconds: 1, Nanos: -1}, {Seconds: 315576000001}, {Seconds: 3600}} {
			out = append(out, func() protoreflect.Message { return proto.Clone(d).ProtoReflect() })
		}
	case "google.protobuf.Any":
		for _, a := range []*anypb.Any{{TypeUrl: "type.googleapis.com/x.Y"}, {TypeUrl: ""}} {
			out = append(out, func() protoreflect.Message { return proto.Clone(a).ProtoReflect() })
		}
	case "google.protobuf.UInt32Value", "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.Int64Value",
		"google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.StringValue", "google.protobuf.BoolValue", "google.protobuf.BytesValue":
		vfd := md.Fields().ByNumber(1)
		for _, v := range scalarValues(vfd) {
			out = append(out, func() protoreflect.Message {
				m := messageNew(md)
				m.Set(vfd, v)
				return m
			})
		}
	}
	return out
}

func messageNew(md protoreflect.MessageDescriptor) protoreflect.Message {
	mt, err := protoregistryFind(md)
	if err != nil {
		panic(err)
	}
	return mt.New()
}

// mutations lists the changes tried on field fd.
func mutations(fd protoreflect.FieldDescriptor) []mutation {
	out := []mutation{{"clear", func(m protoreflect.Message, fd protoreflect.FieldDescriptor) { m.Clear(fd) }}}
	switch {
	case fd.IsList():
		out = append(out, mutation{"grow", func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
			l := m.Mutable(fd).List()
			if l.Len() == 0 {
				if fd.Message() != nil {
					l.Append(protoreflect.ValueOfMessage(messageNew(fd.Message())))
				} else {
					l.Append(scalarValues(fd)[0])
				}
			}
			for i := 0; i < 70; i++ {
				if fd.Message() != nil {
					l.Append(protoreflect.ValueOfMessage(proto.Clone(l.Get(0).Message().Interface()).ProtoReflect()))
				} else {
					l.Append(l.Get(0))
				}
			}
		}})
		if fd.Message() != nil {
			for i, mk := range messageValues(fd.Message()) {
				out = append(out, mutation{fmt.Sprintf("append message %d", i), func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
					m.Mutable(fd).List().Append(protoreflect.ValueOfMessage(mk()))
				}})
			}
		} else {
			for i, v := range scalarValues(fd) {
				out = append(out, mutation{fmt.Sprintf("append %d", i), func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
					m.Mutable(fd).List().Append(v)
				}})
			}
		}
	case fd.IsMap():
		keys := scalarValues(fd.MapKey())
		for ki, k := range keys[:min(2, len(keys))] {
			if fd.MapValue().Message() != nil {
				out = append(out, mutation{fmt.Sprintf("put %d empty", ki), func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
					m.Mutable(fd).Map().Set(k.MapKey(), protoreflect.ValueOfMessage(messageNew(fd.MapValue().Message())))
				}})
				continue
			}
			for vi, v := range scalarValues(fd.MapValue()) {
				out = append(out, mutation{fmt.Sprintf("put %d %d", ki, vi), func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
					m.Mutable(fd).Map().Set(k.MapKey(), v)
				}})
			}
		}
	case fd.Message() != nil:
		for i, mk := range messageValues(fd.Message()) {
			out = append(out, mutation{fmt.Sprintf("set message %d", i), func(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
				m.Set(fd, protoreflect.ValueOfMessage(mk()))
			}})
		}
	default:
		for i, v := range scalarValues(fd) {
			out = append(out, mutation{fmt.Sprintf("set %d", i), func(m protoreflect.Message, fd protoreflect.FieldDescriptor) { m.Set(fd, v) }})
		}
	}
	return out
}

// TestMutationsAgree changes, one at a time, every field of every message
// type met in the generated configuration (and the fields of empty
// messages set in their place) to boundary and invalid values, and checks
// that Validate and ValidateAll give the generated code's verdict and
// error string on the whole resource.
func TestMutationsAgree(t *testing.T) {
	done := map[mutKey]bool{}
	types := map[protoreflect.FullName]bool{}
	var runs, failing int
	try := func(root proto.Message, path []step, fd protoreflect.FieldDescriptor, mu mutation) {
		c := proto.Clone(root)
		mu.apply(follow(c.ProtoReflect(), path), fd)
		runs++
		if Validate(c) != nil {
			failing++
		}
		if d := disagreement(c); d != "" {
			t.Errorf("%s, %s.%s %s: %s", root.ProtoReflect().Descriptor().FullName(), fd.ContainingMessage().FullName(), fd.Name(), mu.name, d)
		}
	}
	for _, root := range corpus(t) {
		positions(root.ProtoReflect(), nil, func(path []step, m protoreflect.Message) {
			md := m.Descriptor()
			types[md.FullName()] = true
			fields := md.Fields()
			for i := 0; i < fields.Len(); i++ {
				fd := fields.Get(i)
				for _, mu := range mutations(fd) {
					k := mutKey{md.FullName(), fd.Name(), mu.name}
					if done[k] {
						continue
					}
					done[k] = true
					try(root, path, fd, mu)
					// One level deeper: mutate each field of an empty
					// message set in place of an unset one.
					if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && !m.Has(fd) && mu.name == "set message 0" {
						deeper(t, root, path, fd, done, types, func(p []step, sfd protoreflect.FieldDescriptor, smu mutation) {
							try(withEmpty(root, path, fd), p, sfd, smu)
						})
					}
				}
			}
		})
	}
	if runs < 1000 || failing == 0 || failing == runs {
		t.Fatalf("mutations: %d runs, %d rejected: the test exercises too little", runs, failing)
	}
	t.Logf("%d mutations over %d message types (%d (type, field, change) keys); %d rejected by both", runs, len(types), len(done), failing)
}

// mutKey identifies a change of one field of one message type: each is
// tried once, where first met.
type mutKey struct {
	msg protoreflect.FullName
	fd  protoreflect.Name
	mut string
}

// withEmpty returns a clone of root with an empty message set in field fd
// of the message at path.
func withEmpty(root proto.Message, path []step, fd protoreflect.FieldDescriptor) proto.Message {
	c := proto.Clone(root)
	follow(c.ProtoReflect(), path).Set(fd, protoreflect.ValueOfMessage(messageNew(fd.Message())))
	return c
}

// deeper calls try for every not yet done mutation of the fields of the
// empty message set in fd of the message at path.
func deeper(t *testing.T, root proto.Message, path []step, fd protoreflect.FieldDescriptor, done map[mutKey]bool, types map[protoreflect.FullName]bool, try func([]step, protoreflect.FieldDescriptor, mutation)) {
	md := fd.Message()
	types[md.FullName()] = true
	p := append(append([]step(nil), path...), step{fd: fd})
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		sfd := fields.Get(i)
		for _, mu := range mutations(sfd) {
			k := mutKey{md.FullName(), sfd.Name(), mu.name}
			if done[k] {
				continue
			}
			done[k] = true
			try(p, sfd, mu)
		}
	}
}
