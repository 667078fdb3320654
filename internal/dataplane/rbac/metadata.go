package rbac

import (
	"errors"
	"fmt"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/trellismesh/trellis/internal/dataplane/strmatch"
)

// metadataRule is a compiled MetadataMatcher: the value at filter/path
// must match; a missing value matches nothing (then inverted).
type metadataRule struct {
	filter string
	path   []string
	value  valueMatcher
	invert bool
}

func compileMetadata(m *matcherv3.MetadataMatcher) (matcher, error) {
	out := metadataRule{filter: m.GetFilter(), invert: m.GetInvert()}
	for i, seg := range m.GetPath() {
		k := seg.GetKey()
		if k == "" {
			return nil, fmt.Errorf("metadata %q: path[%d]: empty key", out.filter, i)
		}
		out.path = append(out.path, k)
	}
	if len(out.path) == 0 {
		return nil, fmt.Errorf("metadata %q: empty path", out.filter)
	}
	v, err := compileValue(m.GetValue(), 0)
	if err != nil {
		return nil, fmt.Errorf("metadata %q: %w", out.filter, err)
	}
	out.value = v
	return &out, nil
}

func (r *metadataRule) match(in *Input) bool {
	v, ok := lookup(in.Metadata, r.filter, r.path)
	return (ok && r.value.match(v)) != r.invert
}

func lookup(md Metadata, filter string, path []string) (any, bool) {
	fields, ok := md[filter]
	if !ok {
		return nil, false
	}
	var cur any = fields
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

type valueKind uint8

const (
	valNull valueKind = iota
	valDouble
	valString
	valBool
	valPresent
	valList
	valOr
)

// valueMatcher is a compiled ValueMatcher over JSON-like values.
type valueMatcher struct {
	kind       valueKind
	lo, hi     float64 // double range [lo, hi); exact when isExact
	isExact    bool
	exact      float64
	str        strmatch.Matcher
	boolean    bool
	present    bool
	candidates []valueMatcher // one_of element (1) or or_match alternatives
}

func compileValue(v *matcherv3.ValueMatcher, depth int) (valueMatcher, error) {
	if depth > MaxDepth {
		return valueMatcher{}, fmt.Errorf("value matchers nested deeper than %d", MaxDepth)
	}
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		return valueMatcher{kind: valNull}, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		out := valueMatcher{kind: valDouble}
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			out.isExact, out.exact = true, d.Exact
		case *matcherv3.DoubleMatcher_Range:
			out.lo, out.hi = d.Range.GetStart(), d.Range.GetEnd()
		default:
			return out, errors.New("double_match has no pattern")
		}
		return out, nil
	case *matcherv3.ValueMatcher_StringMatch:
		sm, err := strmatch.Compile(p.StringMatch, maxRegexLen)
		return valueMatcher{kind: valString, str: sm}, err
	case *matcherv3.ValueMatcher_BoolMatch:
		return valueMatcher{kind: valBool, boolean: p.BoolMatch}, nil
	case *matcherv3.ValueMatcher_PresentMatch:
		return valueMatcher{kind: valPresent, present: p.PresentMatch}, nil
	case *matcherv3.ValueMatcher_ListMatch:
		one := p.ListMatch.GetOneOf()
		if one == nil {
			return valueMatcher{}, errors.New("list_match has no one_of")
		}
		inner, err := compileValue(one, depth+1)
		if err != nil {
			return valueMatcher{}, fmt.Errorf("list_match: %w", err)
		}
		return valueMatcher{kind: valList, candidates: []valueMatcher{inner}}, nil
	case *matcherv3.ValueMatcher_OrMatch:
		out := valueMatcher{kind: valOr}
		for i, vm := range p.OrMatch.GetValueMatchers() {
			inner, err := compileValue(vm, depth+1)
			if err != nil {
				return out, fmt.Errorf("or_match[%d]: %w", i, err)
			}
			out.candidates = append(out.candidates, inner)
		}
		return out, nil
	}
	return valueMatcher{}, errors.New("value matcher has no pattern")
}

func (m *valueMatcher) match(v any) bool {
	switch m.kind {
	case valNull:
		return v == nil
	case valDouble:
		f, ok := v.(float64)
		if !ok {
			return false
		}
		if m.isExact {
			return f == m.exact
		}
		return f >= m.lo && f < m.hi
	case valString:
		s, ok := v.(string)
		return ok && m.str.Match(s)
	case valBool:
		b, ok := v.(bool)
		return ok && b == m.boolean
	case valPresent:
		// A value that is found is present (JSON null included, as a
		// protobuf Value with null_value set).
		return m.present
	case valList:
		l, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range l {
			if m.candidates[0].match(e) {
				return true
			}
		}
		return false
	case valOr:
		for i := range m.candidates {
			if m.candidates[i].match(v) {
				return true
			}
		}
	}
	return false
}

// MetadataMatcher is a compiled envoy.type.matcher.v3.MetadataMatcher
// outside a policy (the ext_authz filter's filter_enabled_metadata). It
// is immutable.
type MetadataMatcher struct{ r *metadataRule }

// CompileMetadataMatcher compiles a MetadataMatcher.
func CompileMetadataMatcher(m *matcherv3.MetadataMatcher) (*MetadataMatcher, error) {
	r, err := compileMetadata(m)
	if err != nil {
		return nil, err
	}
	return &MetadataMatcher{r: r.(*metadataRule)}, nil
}

// Match reports whether the dynamic metadata md matches.
func (m *MetadataMatcher) Match(md Metadata) bool {
	return m.r.match(&Input{Metadata: md})
}
