package pgv

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Validate checks m against the PGV rules of its descriptor and returns the
// first violation, as the generated m.Validate() does. A nil message, a
// typed nil pointer and messages without PGV code give nil.
func Validate(m proto.Message) error { return validateRoot(m, false) }

// ValidateAll checks m against the PGV rules of its descriptor and returns
// every violation as a MultiError, as the generated m.ValidateAll() does.
func ValidateAll(m proto.Message) error { return validateRoot(m, true) }

func validateRoot(m proto.Message, all bool) error {
	if m == nil {
		return nil
	}
	pm := m.ProtoReflect()
	if !pm.IsValid() {
		return nil
	}
	s := sink{all: all}
	return rulesFor(pm.Descriptor()).validate(&s, pm)
}

// FieldError is one violation, printed as the generated XxxValidationError
// is: "invalid [key for ]<Message>.<Field>: <reason>[ | caused by: <cause>]".
type FieldError struct {
	message string // Go type name of the message holding the field
	field   string // Go field name, with [index] or [key] for elements
	reason  string
	cause   error
	key     bool
}

// Field returns the field (Go name, with an element index or map key).
func (e FieldError) Field() string { return e.field }

// Reason returns why the value was rejected.
func (e FieldError) Reason() string { return e.reason }

// Cause returns the violation inside an embedded message, or nil.
func (e FieldError) Cause() error { return e.cause }

// Key reports whether the violation is on a map key.
func (e FieldError) Key() bool { return e.key }

// ErrorName returns the name of the generated error type, e.g.
// "ClusterValidationError".
func (e FieldError) ErrorName() string { return e.message + "ValidationError" }

// Unwrap returns the cause.
func (e FieldError) Unwrap() error { return e.cause }

func (e FieldError) Error() string {
	cause := ""
	if e.cause != nil {
		cause = fmt.Sprintf(" | caused by: %v", e.cause)
	}
	key := ""
	if e.key {
		key = "key for "
	}
	return fmt.Sprintf("invalid %s%s.%s: %s%s", key, e.message, e.field, e.reason, cause)
}

// MultiError holds every violation of one message, as the generated
// XxxMultiError returned by ValidateAll.
type MultiError []error

// Error joins the violations with "; ".
func (m MultiError) Error() string {
	msgs := make([]string, 0, len(m))
	for _, err := range m {
		msgs = append(msgs, err.Error())
	}
	return strings.Join(msgs, "; ")
}

// AllErrors returns the violations.
func (m MultiError) AllErrors() []error { return m }

// Unwrap returns the violations.
func (m MultiError) Unwrap() []error { return m }

// cache maps a protoreflect.MessageDescriptor to its *msgRules. Descriptors
// are immutable and live as long as the program, so entries never go stale;
// only message types actually validated are compiled.
var cache sync.Map

func rulesFor(md protoreflect.MessageDescriptor) *msgRules {
	if r, ok := cache.Load(md); ok {
		return r.(*msgRules)
	}
	r, _ := cache.LoadOrStore(md, compileMessage(md))
	return r.(*msgRules)
}

// msgRules are the compiled rules of one message type, in the order the
// generated validate method checks them: fields outside oneofs in
// declaration order, then each oneof, then proto3 optional fields.
type msgRules struct {
	name      string // Go type name
	skip      bool   // (validate.disabled), (validate.ignored) or no PGV code
	fields    []fieldRule
	oneofs    []*oneofRule
	synthetic []fieldRule
}

type fieldRule struct {
	fd   protoreflect.FieldDescriptor
	name string
	n    node // nil: no check
}

type oneofRule struct {
	od       protoreflect.OneofDescriptor
	name     string
	required bool
	members  []fieldRule
	goField  atomic.Pointer[goField] // the oneof's interface field in the Go struct
}

// goField locates a struct field of a Go message type.
type goField struct {
	t     reflect.Type
	index []int // nil: the type has no such interface field
}

func compileMessage(md protoreflect.MessageDescriptor) *msgRules {
	r := &msgRules{name: goTypeName(md)}
	opts := md.Options()
	if !hasValidate(md) || proto.GetExtension(opts, validate.E_Disabled).(bool) || proto.GetExtension(opts, validate.E_Ignored).(bool) {
		r.skip = true
		return r
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		od := fd.ContainingOneof()
		switch {
		case od == nil:
			if fr := compileFieldRule(fd); fr.n != nil {
				r.fields = append(r.fields, fr)
			}
		case od.IsSynthetic():
			if fr := compileFieldRule(fd); fr.n != nil {
				r.synthetic = append(r.synthetic, fr)
			}
		}
	}
	oneofs := md.Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		od := oneofs.Get(i)
		if od.IsSynthetic() {
			continue
		}
		o := &oneofRule{
			od:       od,
			name:     goCamelCase(string(od.Name())),
			required: proto.GetExtension(od.Options(), validate.E_Required).(bool),
		}
		r.oneofs = append(r.oneofs, o)
		for j := 0; j < od.Fields().Len(); j++ {
			o.members = append(o.members, compileFieldRule(od.Fields().Get(j)))
		}
	}
	return r
}

func compileFieldRule(fd protoreflect.FieldDescriptor) fieldRule {
	rules, _ := proto.GetExtension(fd.Options(), validate.E_Rules).(*validate.FieldRules)
	return fieldRule{fd: fd, name: goCamelCase(string(fd.Name())), n: compileField(fd, rules)}
}

// sink collects violations. One sink serves a whole Validate call: each
// message being checked owns the tail of errs from where it started.
type sink struct {
	msg  string // Go name of the message being checked
	all  bool
	errs []error
}

// fail records a violation and reports whether validation must stop
// (first-error mode).
func (s *sink) fail(l loc, reason string, cause error) bool {
	s.errs = append(s.errs, FieldError{message: s.msg, field: l.String(), reason: reason, cause: cause})
	return !s.all
}

// loc names the field being checked: a field, a list element or a map value.
type loc struct {
	name string
	kind uint8 // 0 field, 1 list index, 2 map key
	i    int
	key  protoreflect.MapKey
}

func (l loc) String() string {
	switch l.kind {
	case 1:
		return fmt.Sprintf("%s[%v]", l.name, l.i)
	case 2:
		return fmt.Sprintf("%s[%v]", l.name, l.key.Interface())
	}
	return l.name
}

func (l loc) field() loc { return loc{name: l.name} }

func (r *msgRules) validate(s *sink, m protoreflect.Message) error {
	if r.skip {
		return nil
	}
	outer, start := s.msg, len(s.errs)
	s.msg = r.name
	r.check(s, m)
	s.msg = outer
	if len(s.errs) == start {
		return nil
	}
	errs := append([]error(nil), s.errs[start:]...)
	clear(s.errs[start:])
	s.errs = s.errs[:start]
	if !s.all {
		return errs[0]
	}
	return MultiError(errs)
}

// check checks the rules of m in order, stopping at the first violation
// in first-error mode.
func (r *msgRules) check(s *sink, m protoreflect.Message) {
	for i := range r.fields {
		if r.fields[i].check(s, m) {
			return
		}
	}
	for _, o := range r.oneofs {
		set := m.WhichOneof(o.od)
		present := set != nil
		if set == nil && r.typedNil(m, o) {
			// The generated code reports a oneof wrapper holding a nil
			// pointer and counts the oneof as set; it would then read the
			// member through the nil wrapper, so no member rule is checked.
			present = true
			if s.fail(loc{name: o.name}, "oneof value cannot be a typed-nil", nil) {
				return
			}
		}
		if set != nil {
			for j := range o.members {
				if f := &o.members[j]; f.fd == set {
					if f.n != nil && f.check(s, m) {
						return
					}
					break
				}
			}
		}
		if !present && o.required {
			if s.fail(loc{name: o.name}, "value is required", nil) {
				return
			}
		}
	}
	for i := range r.synthetic {
		f := &r.synthetic[i]
		if m.Has(f.fd) && f.check(s, m) {
			return
		}
	}
}

func (f *fieldRule) check(s *sink, m protoreflect.Message) bool {
	switch {
	case f.fd.IsList() || f.fd.IsMap():
		// Getting a list or map allocates a view; an empty one is
		// passed as the invalid Value.
		var v protoreflect.Value
		if m.Has(f.fd) {
			v = m.Get(f.fd)
		}
		return f.n.check(s, loc{name: f.name}, v, true)
	case f.fd.Message() != nil:
		return f.n.check(s, loc{name: f.name}, m.Get(f.fd), m.Has(f.fd))
	}
	return f.n.check(s, loc{name: f.name}, m.Get(f.fd), true)
}

// typedNil reports whether the Go struct behind m holds, in the interface
// field of oneof o, a wrapper that is a nil pointer: protoreflect sees the
// oneof as unset, the generated code does not.
func (r *msgRules) typedNil(m protoreflect.Message, o *oneofRule) bool {
	rv := reflect.ValueOf(m.Interface())
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return false
	}
	sv := rv.Elem()
	if sv.Kind() != reflect.Struct {
		return false
	}
	gf := o.goField.Load()
	if gf == nil || gf.t != sv.Type() {
		gf = &goField{t: sv.Type()}
		if sf, ok := gf.t.FieldByName(o.name); ok && sf.Type.Kind() == reflect.Interface {
			gf.index = sf.Index
		}
		o.goField.Store(gf)
	}
	if gf.index == nil {
		return false
	}
	fv := sv.FieldByIndex(gf.index)
	if fv.IsNil() {
		return false
	}
	e := fv.Elem()
	return e.Kind() == reflect.Pointer && e.IsNil()
}

// sub holds the rules of an embedded message type, resolved on first use
// (message types may be recursive).
type sub struct {
	md protoreflect.MessageDescriptor
	p  atomic.Pointer[msgRules]
}

func (s *sub) rules() *msgRules {
	if r := s.p.Load(); r != nil {
		return r
	}
	r := rulesFor(s.md)
	s.p.Store(r)
	return r
}
