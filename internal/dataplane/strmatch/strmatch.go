package strmatch

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// Kind is the pattern kind of a Matcher.
type Kind uint8

// Pattern kinds.
const (
	Exact Kind = iota
	Prefix
	Suffix
	Contains
	Regex
)

// Matcher is a compiled StringMatcher. Callers may also build one directly
// (legacy header match fields). IgnoreCase folds ASCII only and is not
// used for Regex.
type Matcher struct {
	Kind       Kind
	Value      string
	IgnoreCase bool
	Re         *regexp.Regexp
}

// Compile compiles m; a regex longer than maxRegexLen bytes is an error.
func Compile(m *matcherv3.StringMatcher, maxRegexLen int) (Matcher, error) {
	out := Matcher{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Kind, out.Value = Exact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Kind, out.Value = Prefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Kind, out.Value = Suffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Kind, out.Value = Contains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		if p.SafeRegex == nil {
			return out, errors.New("regex matcher is missing")
		}
		re, err := CompileFullRegex(p.SafeRegex.GetRegex(), maxRegexLen)
		if err != nil {
			return out, err
		}
		out.Kind, out.Re, out.IgnoreCase = Regex, re, false
	case *matcherv3.StringMatcher_Custom:
		return out, fmt.Errorf("custom string matcher %q is not supported", p.Custom.GetName())
	default:
		return out, errors.New("string matcher has no pattern")
	}
	return out, nil
}

// CompileFullRegex compiles an RE2 expression for a full match, as
// RE2::FullMatch. Go's regexp has no program-size limit like Envoy's
// re2.max_program_size; maxLen bounds the compile cost instead.
func CompileFullRegex(expr string, maxLen int) (*regexp.Regexp, error) {
	if len(expr) > maxLen {
		return nil, fmt.Errorf("regex is %d bytes; maximum is %d", len(expr), maxLen)
	}
	// Parse the expression on its own first: wrapping an invalid one such
	// as "a)|(b" could make it valid with another meaning.
	if _, err := syntax.Parse(expr, syntax.Perl); err != nil {
		return nil, fmt.Errorf("invalid regex %q: %w", expr, err)
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("invalid regex %q: %w", expr, err)
	}
	return re, nil
}

// Match reports whether s matches.
func (m *Matcher) Match(s string) bool {
	switch m.Kind {
	case Exact:
		if m.IgnoreCase {
			return EqualFold(s, m.Value)
		}
		return s == m.Value
	case Prefix:
		if m.IgnoreCase {
			return HasPrefixFold(s, m.Value)
		}
		return strings.HasPrefix(s, m.Value)
	case Suffix:
		if m.IgnoreCase {
			return len(s) >= len(m.Value) && EqualFold(s[len(s)-len(m.Value):], m.Value)
		}
		return strings.HasSuffix(s, m.Value)
	case Contains:
		if m.IgnoreCase {
			return ContainsFold(s, m.Value)
		}
		return strings.Contains(s, m.Value)
	case Regex:
		return m.Re.MatchString(s)
	}
	return false
}

// EqualFold compares with ASCII case folding only (absl's EqualsIgnoreCase).
func EqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if Lower(a[i]) != Lower(b[i]) {
			return false
		}
	}
	return true
}

// HasPrefixFold is strings.HasPrefix with ASCII case folding.
func HasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && EqualFold(s[:len(prefix)], prefix)
}

// ContainsFold is strings.Contains with ASCII case folding.
func ContainsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// Lower lower-cases an ASCII letter.
func Lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
