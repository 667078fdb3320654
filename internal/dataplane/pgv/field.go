package pgv

import (
	"cmp"
	"slices"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// node checks one value: a field, a list element or a map key or value.
// present is false for an unset message (a nil pointer in Go). check
// reports whether validation must stop (first-error mode).
type node interface {
	check(s *sink, l loc, v protoreflect.Value, present bool) bool
}

// compileField compiles the rules of fd as protoc-gen-validate's
// resolveRules picks a template for it; nil means no check.
func compileField(fd protoreflect.FieldDescriptor, rules *validate.FieldRules) node {
	switch {
	case rules.GetType() != nil:
		if fd.IsList() {
			if r, ok := rules.GetType().(*validate.FieldRules_Repeated); ok {
				return compileRepeated(fd, r.Repeated)
			}
			return nil
		}
		if fd.IsMap() {
			if r, ok := rules.GetType().(*validate.FieldRules_Map); ok {
				return compileMap(fd, r.Map)
			}
			return nil
		}
		return compileValue(fd, rules)
	case fd.IsList():
		return compileRepeated(fd, &validate.RepeatedRules{})
	case fd.IsMap():
		if fd.MapValue().Message() != nil {
			return compileMap(fd, &validate.MapRules{})
		}
		return nil
	}
	return compileValue(fd, rules)
}

// compileValue compiles the rules of a single value of type t (a field,
// or the element, key or value type of a list or map field).
func compileValue(t protoreflect.FieldDescriptor, rules *validate.FieldRules) node {
	embed := t.Message() != nil
	var n node
	switch r := rules.GetType().(type) {
	case nil:
		if embed {
			return newMessageNode(t.Message(), rules.GetMessage())
		}
		return nil
	case *validate.FieldRules_Float:
		n = newNum(r.Float.Const, r.Float.Lt, r.Float.Lte, r.Float.Gt, r.Float.Gte, r.Float.In, r.Float.NotIn, r.Float.GetIgnoreEmpty(), floatOf[float32])
	case *validate.FieldRules_Double:
		n = newNum(r.Double.Const, r.Double.Lt, r.Double.Lte, r.Double.Gt, r.Double.Gte, r.Double.In, r.Double.NotIn, r.Double.GetIgnoreEmpty(), floatOf[float64])
	case *validate.FieldRules_Int32:
		n = newNum(r.Int32.Const, r.Int32.Lt, r.Int32.Lte, r.Int32.Gt, r.Int32.Gte, r.Int32.In, r.Int32.NotIn, r.Int32.GetIgnoreEmpty(), intOf[int32])
	case *validate.FieldRules_Int64:
		n = newNum(r.Int64.Const, r.Int64.Lt, r.Int64.Lte, r.Int64.Gt, r.Int64.Gte, r.Int64.In, r.Int64.NotIn, r.Int64.GetIgnoreEmpty(), intOf[int64])
	case *validate.FieldRules_Uint32:
		n = newNum(r.Uint32.Const, r.Uint32.Lt, r.Uint32.Lte, r.Uint32.Gt, r.Uint32.Gte, r.Uint32.In, r.Uint32.NotIn, r.Uint32.GetIgnoreEmpty(), uintOf[uint32])
	case *validate.FieldRules_Uint64:
		n = newNum(r.Uint64.Const, r.Uint64.Lt, r.Uint64.Lte, r.Uint64.Gt, r.Uint64.Gte, r.Uint64.In, r.Uint64.NotIn, r.Uint64.GetIgnoreEmpty(), uintOf[uint64])
	case *validate.FieldRules_Sint32:
		return newNum(r.Sint32.Const, r.Sint32.Lt, r.Sint32.Lte, r.Sint32.Gt, r.Sint32.Gte, r.Sint32.In, r.Sint32.NotIn, r.Sint32.GetIgnoreEmpty(), intOf[int32])
	case *validate.FieldRules_Sint64:
		return newNum(r.Sint64.Const, r.Sint64.Lt, r.Sint64.Lte, r.Sint64.Gt, r.Sint64.Gte, r.Sint64.In, r.Sint64.NotIn, r.Sint64.GetIgnoreEmpty(), intOf[int64])
	case *validate.FieldRules_Fixed32:
		return newNum(r.Fixed32.Const, r.Fixed32.Lt, r.Fixed32.Lte, r.Fixed32.Gt, r.Fixed32.Gte, r.Fixed32.In, r.Fixed32.NotIn, r.Fixed32.GetIgnoreEmpty(), uintOf[uint32])
	case *validate.FieldRules_Fixed64:
		return newNum(r.Fixed64.Const, r.Fixed64.Lt, r.Fixed64.Lte, r.Fixed64.Gt, r.Fixed64.Gte, r.Fixed64.In, r.Fixed64.NotIn, r.Fixed64.GetIgnoreEmpty(), uintOf[uint64])
	case *validate.FieldRules_Sfixed32:
		return newNum(r.Sfixed32.Const, r.Sfixed32.Lt, r.Sfixed32.Lte, r.Sfixed32.Gt, r.Sfixed32.Gte, r.Sfixed32.In, r.Sfixed32.NotIn, r.Sfixed32.GetIgnoreEmpty(), intOf[int32])
	case *validate.FieldRules_Sfixed64:
		return newNum(r.Sfixed64.Const, r.Sfixed64.Lt, r.Sfixed64.Lte, r.Sfixed64.Gt, r.Sfixed64.Gte, r.Sfixed64.In, r.Sfixed64.NotIn, r.Sfixed64.GetIgnoreEmpty(), intOf[int64])
	case *validate.FieldRules_Bool:
		n = boolNode{r.Bool}
	case *validate.FieldRules_String_:
		n = newStringNode(r.String_)
	case *validate.FieldRules_Bytes:
		n = newBytesNode(r.Bytes)
	case *validate.FieldRules_Enum:
		return enumNode{r: r.Enum, ed: t.Enum()}
	case *validate.FieldRules_Any:
		return anyNode{r.Any}
	case *validate.FieldRules_Duration:
		return durationNode{r.Duration}
	case *validate.FieldRules_Timestamp:
		return timestampNode{r.Timestamp}
	default:
		// Repeated or map rules on a single value: protoc-gen-validate
		// refuses to generate code for them.
		return nil
	}
	if embed {
		// Scalar rules on a wrapper type (google.protobuf.UInt32Value, ...)
		// apply to its value when it is set.
		return wrapperNode{inner: n, value: t.Message().Fields().ByNumber(1), required: rules.GetMessage().GetRequired()}
	}
	return n
}

// messageNode is the "message" template: message.required, then the
// embedded message's own Validate unless message.skip.
type messageNode struct {
	required bool
	skip     bool
	sub      *sub // nil: the type has no PGV code
}

func newMessageNode(md protoreflect.MessageDescriptor, r *validate.MessageRules) node {
	n := messageNode{required: r.GetRequired(), skip: r.GetSkip()}
	if hasValidate(md) {
		n.sub = &sub{md: md}
	}
	if !n.required && (n.skip || n.sub == nil) {
		return nil
	}
	return n
}

func (n messageNode) check(s *sink, l loc, v protoreflect.Value, present bool) bool {
	if n.required && !present {
		if s.fail(l, "value is required", nil) {
			return true
		}
	}
	if n.skip || n.sub == nil || !present {
		return false
	}
	if err := n.sub.rules().validate(s, v.Message()); err != nil {
		return s.fail(l, "embedded message failed validation", err)
	}
	return false
}

// wrapperNode applies scalar rules to the value of a wrapper message. As
// in the generated code, the element index is not part of the field name
// of the inner violations.
type wrapperNode struct {
	inner    node
	value    protoreflect.FieldDescriptor
	required bool
}

func (n wrapperNode) check(s *sink, l loc, v protoreflect.Value, present bool) bool {
	if present {
		return n.inner.check(s, l.field(), v.Message().Get(n.value), true)
	}
	if n.required {
		return s.fail(l, "value is required and must not be nil.", nil)
	}
	return false
}

type repeatedNode struct {
	r    *validate.RepeatedRules
	elem node
}

func compileRepeated(fd protoreflect.FieldDescriptor, r *validate.RepeatedRules) node {
	n := repeatedNode{r: r, elem: compileValue(fd, r.GetItems())}
	if n.elem == nil && r.GetMinItems() == 0 && r.MaxItems == nil && !r.GetUnique() {
		return nil
	}
	return n
}

// check takes the invalid Value for an empty list.
func (n repeatedNode) check(s *sink, l loc, v protoreflect.Value, _ bool) bool {
	var list protoreflect.List
	size := 0
	if v.IsValid() {
		list = v.List()
		size = list.Len()
	}
	r := n.r
	if r.GetIgnoreEmpty() && size == 0 {
		return false
	}
	if min := r.GetMinItems(); min != 0 {
		switch {
		case min == r.GetMaxItems():
			if uint64(size) != min && s.fail(l, sprint("value must contain exactly ", min, " item(s)"), nil) {
				return true
			}
		case r.MaxItems != nil:
			if max := r.GetMaxItems(); (uint64(size) < min || uint64(size) > max) && s.fail(l, sprint("value must contain between ", min, " and ", max, " items, inclusive"), nil) {
				return true
			}
		default:
			if uint64(size) < min && s.fail(l, sprint("value must contain at least ", min, " item(s)"), nil) {
				return true
			}
		}
	} else if r.MaxItems != nil {
		if max := r.GetMaxItems(); uint64(size) > max && s.fail(l, sprint("value must contain no more than ", max, " item(s)"), nil) {
			return true
		}
	}
	unique := r.GetUnique()
	if size == 0 || (!unique && n.elem == nil) {
		return false
	}
	var seen map[any]struct{}
	if unique {
		seen = make(map[any]struct{}, size)
	}
	for i := 0; i < size; i++ {
		e := list.Get(i)
		el := loc{name: l.name, kind: 1, i: i}
		if unique {
			k := uniqueKey(e)
			if _, ok := seen[k]; ok {
				if s.fail(el, "repeated value must contain unique items", nil) {
					return true
				}
			} else {
				seen[k] = struct{}{}
			}
		}
		if n.elem != nil {
			present := true
			if m, ok := e.Interface().(protoreflect.Message); ok {
				present = m.IsValid()
			}
			if n.elem.check(s, el, e, present) {
				return true
			}
		}
	}
	return false
}

// uniqueKey is the map key the generated code uses for an element: the
// value itself, bytes as a string.
func uniqueKey(v protoreflect.Value) any {
	switch x := v.Interface().(type) {
	case []byte:
		return string(x)
	case protoreflect.Message:
		return x.Interface() // pointer identity, as in Go
	default:
		return x
	}
}

type mapNode struct {
	r        *validate.MapRules
	key, val node
}

func compileMap(fd protoreflect.FieldDescriptor, r *validate.MapRules) node {
	n := mapNode{r: r, key: compileValue(fd.MapKey(), r.GetKeys()), val: compileValue(fd.MapValue(), r.GetValues())}
	if n.key == nil && n.val == nil && r.GetMinPairs() == 0 && r.MaxPairs == nil && !r.GetNoSparse() {
		return nil
	}
	return n
}

// check takes the invalid Value for an empty map.
func (n mapNode) check(s *sink, l loc, v protoreflect.Value, _ bool) bool {
	var m protoreflect.Map
	size := 0
	if v.IsValid() {
		m = v.Map()
		size = m.Len()
	}
	r := n.r
	if r.GetIgnoreEmpty() && size == 0 {
		return false
	}
	if min := r.GetMinPairs(); min != 0 {
		switch {
		case min == r.GetMaxPairs():
			if uint64(size) != min && s.fail(l, sprint("value must contain exactly ", min, " pair(s)"), nil) {
				return true
			}
		case r.MaxPairs != nil:
			if max := r.GetMaxPairs(); (uint64(size) < min || uint64(size) > max) && s.fail(l, sprint("value must contain between ", min, " and ", max, " pairs, inclusive"), nil) {
				return true
			}
		default:
			if uint64(size) < min && s.fail(l, sprint("value must contain at least ", min, " pair(s)"), nil) {
				return true
			}
		}
	} else if r.MaxPairs != nil {
		if max := r.GetMaxPairs(); uint64(size) > max && s.fail(l, sprint("value must contain no more than ", max, " pair(s)"), nil) {
			return true
		}
	}
	if size == 0 || (n.key == nil && n.val == nil && !r.GetNoSparse()) {
		return false
	}
	keys := make([]protoreflect.MapKey, 0, size)
	m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, compareKeys)
	for _, k := range keys {
		val := m.Get(k)
		el := loc{name: l.name, kind: 2, key: k}
		present := true
		if mv, ok := val.Interface().(protoreflect.Message); ok {
			present = mv.IsValid()
		}
		if r.GetNoSparse() && !present {
			if s.fail(el, "value cannot be sparse, all pairs must be non-nil", nil) {
				return true
			}
		}
		if n.key != nil && n.key.check(s, el, k.Value(), true) {
			return true
		}
		if n.val != nil && n.val.check(s, el, val, present) {
			return true
		}
	}
	return false
}

// compareKeys orders map keys as the generated code's sort.Slice over the
// Go keys does.
func compareKeys(a, b protoreflect.MapKey) int {
	switch x := a.Interface().(type) {
	case string:
		return cmp.Compare(x, b.String())
	case bool:
		y := b.Bool()
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case int32, int64:
		return cmp.Compare(a.Int(), b.Int())
	default:
		return cmp.Compare(a.Uint(), b.Uint())
	}
}
