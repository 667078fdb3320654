package pgv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// sprint formats a reason as the generator did: fmt.Sprint of the
// template's operands, rule values in their Go types.
func sprint(a ...any) string { return fmt.Sprint(a...) }

type number interface {
	~int32 | ~int64 | ~uint32 | ~uint64 | ~float32 | ~float64
}

func intOf[T ~int32 | ~int64](v protoreflect.Value) T       { return T(v.Int()) }
func uintOf[T ~uint32 | ~uint64](v protoreflect.Value) T    { return T(v.Uint()) }
func floatOf[T ~float32 | ~float64](v protoreflect.Value) T { return T(v.Float()) }

// numNode is the numeric template (const, lt/lte/gt/gte, in/not_in).
type numNode[T number] struct {
	constV, lt, lte, gt, gte *T
	in, notIn                []T
	ignoreEmpty              bool
	get                      func(protoreflect.Value) T
}

func newNum[T number](c, lt, lte, gt, gte *T, in, notIn []T, ignoreEmpty bool, get func(protoreflect.Value) T) node {
	return numNode[T]{constV: c, lt: lt, lte: lte, gt: gt, gte: gte, in: in, notIn: notIn, ignoreEmpty: ignoreEmpty, get: get}
}

func (n numNode[T]) check(s *sink, l loc, v protoreflect.Value, _ bool) bool {
	val := n.get(v)
	if n.ignoreEmpty && val == 0 {
		return false
	}
	if n.constV != nil && val != *n.constV {
		if s.fail(l, sprint("value must equal ", *n.constV), nil) {
			return true
		}
	}
	if reason := rangeReason(numOrder[T](), val, n.lt, n.lte, n.gt, n.gte); reason != "" {
		if s.fail(l, reason, nil) {
			return true
		}
	}
	if len(n.in) > 0 {
		if !contains(n.in, val) {
			return s.fail(l, sprint("value must be in list ", n.in), nil)
		}
	} else if len(n.notIn) > 0 {
		if contains(n.notIn, val) {
			return s.fail(l, sprint("value must not be in list ", n.notIn), nil)
		}
	}
	return false
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// order compares and prints the values of a range rule.
type order[T any] struct {
	less, lessEq func(a, b T) bool
	str          func(T) string
}

func numOrder[T number]() order[T] {
	return order[T]{
		less:   func(a, b T) bool { return a < b },
		lessEq: func(a, b T) bool { return a <= b },
		str:    func(x T) string { return fmt.Sprint(x) },
	}
}

// rangeReason is the ltgt template (and its duration and timestamp
// variants): the reason val violates the bounds, or "". Exclusive and
// inclusive bounds combine into a range, an "outside" range when the upper
// bound is not above the lower one. Comparisons are written as the
// templates write them, so that NaN behaves the same.
func rangeReason[T any](o order[T], val T, lt, lte, gt, gte *T) string {
	s := o.str
	switch {
	case lt != nil:
		switch {
		case gt != nil:
			if o.less(*gt, *lt) {
				if o.lessEq(val, *gt) || o.lessEq(*lt, val) {
					return "value must be inside range (" + s(*gt) + ", " + s(*lt) + ")"
				}
			} else if o.lessEq(*lt, val) && o.lessEq(val, *gt) {
				return "value must be outside range [" + s(*lt) + ", " + s(*gt) + "]"
			}
		case gte != nil:
			if o.less(*gte, *lt) {
				if o.less(val, *gte) || o.lessEq(*lt, val) {
					return "value must be inside range [" + s(*gte) + ", " + s(*lt) + ")"
				}
			} else if o.lessEq(*lt, val) && o.less(val, *gte) {
				return "value must be outside range [" + s(*lt) + ", " + s(*gte) + ")"
			}
		default:
			if o.lessEq(*lt, val) {
				return "value must be less than " + s(*lt)
			}
		}
	case lte != nil:
		switch {
		case gt != nil:
			if o.less(*gt, *lte) {
				if o.lessEq(val, *gt) || o.less(*lte, val) {
					return "value must be inside range (" + s(*gt) + ", " + s(*lte) + "]"
				}
			} else if o.less(*lte, val) && o.lessEq(val, *gt) {
				return "value must be outside range (" + s(*lte) + ", " + s(*gt) + "]"
			}
		case gte != nil:
			if o.less(*gte, *lte) {
				if o.less(val, *gte) || o.less(*lte, val) {
					return "value must be inside range [" + s(*gte) + ", " + s(*lte) + "]"
				}
			} else if o.less(*lte, val) && o.less(val, *gte) {
				return "value must be outside range (" + s(*lte) + ", " + s(*gte) + ")"
			}
		default:
			if o.less(*lte, val) {
				return "value must be less than or equal to " + s(*lte)
			}
		}
	case gt != nil:
		if o.lessEq(val, *gt) {
			return "value must be greater than " + s(*gt)
		}
	case gte != nil:
		if o.less(val, *gte) {
			return "value must be greater than or equal to " + s(*gte)
		}
	}
	return ""
}

type boolNode struct{ r *validate.BoolRules }

func (n boolNode) check(s *sink, l loc, v protoreflect.Value, _ bool) bool {
	if n.r.Const != nil && v.Bool() != *n.r.Const {
		return s.fail(l, sprint("value must equal ", *n.r.Const), nil)
	}
	return false
}

type enumNode struct {
	r  *validate.EnumRules
	ed protoreflect.EnumDescriptor
}

// name is the first declared name of number x, "" when undefined.
func (n enumNode) name(x int32) string {
	if ev := n.ed.Values().ByNumber(protoreflect.EnumNumber(x)); ev != nil {
		return string(ev.Name())
	}
	return ""
}

func (n enumNode) list(xs []int32) string {
	names := make([]string, len(xs))
	for i, x := range xs {
		names[i] = n.name(x)
	}
	return "[" + strings.Join(names, " ") + "]"
}

func (n enumNode) check(s *sink, l loc, v protoreflect.Value, _ bool) bool {
	val := int32(v.Enum())
	r := n.r
	if r.Const != nil && val != *r.Const {
		if s.fail(l, "value must equal "+n.name(*r.Const), nil) {
			return true
		}
	}
	if len(r.In) > 0 {
		if !contains(r.In, val) && s.fail(l, "value must be in list "+n.list(r.In), nil) {
			return true
		}
	} else if len(r.NotIn) > 0 {
		if contains(r.NotIn, val) && s.fail(l, "value must not be in list "+n.list(r.NotIn), nil) {
			return true
		}
	}
	if r.GetDefinedOnly() && n.ed.Values().ByNumber(protoreflect.EnumNumber(val)) == nil {
		return s.fail(l, "value must be one of the defined enum values", nil)
	}
	return false
}

// Patterns protoc-gen-validate substitutes for (validate.rules).string.well_known_regex.
const (
	httpHeaderName  = "^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$"
	httpHeaderValue = "^[^\u0000-\u0008\u000A-\u001F\u007F]*$"
	headerString    = "^[^\u0000\u000A\u000D]*$" // non-strict header name or value
)

type stringNode struct {
	r           *validate.StringRules
	pattern     *regexp.Regexp // nil with patternText set: the pattern does not compile
	patternText string
	hasPattern  bool
}

func newStringNode(r *validate.StringRules) node {
	n := stringNode{r: r}
	p := r.Pattern
	if wk := r.GetWellKnownRegex(); wk != validate.KnownRegex_UNKNOWN && p == nil {
		var s string
		switch {
		case r.Strict != nil && !*r.Strict:
			s = headerString
		case wk == validate.KnownRegex_HTTP_HEADER_NAME:
			s = httpHeaderName
		case wk == validate.KnownRegex_HTTP_HEADER_VALUE:
			s = httpHeaderValue
		}
		if s != "" {
			p = &s
		}
	}
	if p != nil {
		// protoc-gen-validate refuses to generate code for a pattern that
		// does not compile; such a pattern matches nothing here.
		n.pattern, _ = regexp.Compile(*p)
		n.patternText = *p
		n.hasPattern = true
	}
	return n
}

func (n stringNode) check(s *sink, l loc, v protoreflect.Value, _ bool) bool {
	val := v.String()
	r := n.r
	if r.GetIgnoreEmpty() && val == "" {
		return false
	}
	if r.Const != nil && val != *r.Const && s.fail(l, "value must equal "+*r.Const, nil) {
		return true
	}
	if len(r.In) > 0 {
		if !contains(r.In, val) && s.fail(l, sprint("value must be in list ", r.In), nil) {
			return true
		}
	} else if len(r.NotIn) > 0 {
		if contains(r.NotIn, val) && s.fail(l, sprint("value must not be in list ", r.NotIn), nil) {
			return true
		}
	}
	if r.Len != nil || (r.MinLen != nil && r.MaxLen != nil && r.GetMinLen() == r.GetMaxLen()) {
		want := r.GetMinLen()
		if r.Len != nil {
			want = r.GetLen()
		}
		if uint64(utf8.RuneCountInString(val)) != want && s.fail(l, sprint("value length must be ", want, " runes"), nil) {
			return true
		}
	} else if r.MinLen != nil {
		n := uint64(utf8.RuneCountInString(val))
		if r.MaxLen != nil {
			if (n < r.GetMinLen() || n > r.GetMaxLen()) && s.fail(l, sprint("value length must be between ", r.GetMinLen(), " and ", r.GetMaxLen(), " runes, inclusive"), nil) {
				return true
			}
		} else if n < r.GetMinLen() && s.fail(l, sprint("value length must be at least ", r.GetMinLen(), " runes"), nil) {
			return true
		}
	} else if r.MaxLen != nil {
		if uint64(utf8.RuneCountInString(val)) > r.GetMaxLen() && s.fail(l, sprint("value length must be at most ", r.GetMaxLen(), " runes"), nil) {
			return true
		}
	}
	if stop := checkByteLen(s, l, uint64(len(val)), r.LenBytes, r.MinBytes, r.MaxBytes); stop {
		return true
	}
	if r.Prefix != nil && !strings.HasPrefix(val, *r.Prefix) && s.fail(l, sprint("value does not have prefix ", fmt.Sprintf("%q", *r.Prefix)), nil) {
		return true
	}
	if r.Suffix != nil && !strings.HasSuffix(val, *r.Suffix) && s.fail(l, sprint("value does not have suffix ", fmt.Sprintf("%q", *r.Suffix)), nil) {
		return true
	}
	if r.Contains != nil && !strings.Contains(val, *r.Contains) && s.fail(l, sprint("value does not contain substring ", fmt.Sprintf("%q", *r.Contains)), nil) {
		return true
	}
	if r.NotContains != nil && strings.Contains(val, *r.NotContains) && s.fail(l, sprint("value contains substring ", fmt.Sprintf("%q", *r.NotContains)), nil) {
		return true
	}
	if stop := checkWellKnown(s, l, r, val); stop {
		return true
	}
	if n.hasPattern && (n.pattern == nil || !n.pattern.MatchString(val)) {
		return s.fail(l, fmt.Sprintf("value does not match regex pattern %q", n.patternText), nil)
	}
	return false
}

// checkByteLen is the len_bytes/min_bytes/max_bytes part of the string
// template (and, with len/min_len/max_len, of the bytes template).
func checkByteLen(s *sink, l loc, n uint64, exact, min, max *uint64) bool {
	switch {
	case exact != nil || (min != nil && max != nil && *min == *max):
		want := *min
		if exact != nil {
			want = *exact
		}
		return n != want && s.fail(l, sprint("value length must be ", want, " bytes"), nil)
	case min != nil && max != nil:
		return (n < *min || n > *max) && s.fail(l, sprint("value length must be between ", *min, " and ", *max, " bytes, inclusive"), nil)
	case min != nil:
		return n < *min && s.fail(l, sprint("value length must be at least ", *min, " bytes"), nil)
	case max != nil:
		return n > *max && s.fail(l, sprint("value length must be at most ", *max, " bytes"), nil)
	}
	return false
}

func checkWellKnown(s *sink, l loc, r *validate.StringRules, val string) bool {
	switch {
	case r.GetIp():
		if net.ParseIP(val) == nil {
			return s.fail(l, "value must be a valid IP address", nil)
		}
	case r.GetIpv4():
		if ip := net.ParseIP(val); ip == nil || ip.To4() == nil {
			return s.fail(l, "value must be a valid IPv4 address", nil)
		}
	case r.GetIpv6():
		if ip := net.ParseIP(val); ip == nil || ip.To4() != nil {
			return s.fail(l, "value must be a valid IPv6 address", nil)
		}
	case r.GetEmail():
		if err := validateEmail(val); err != nil {
			return s.fail(l, "value must be a valid email address", err)
		}
	case r.GetHostname():
		if err := validateHostname(val); err != nil {
			return s.fail(l, "value must be a valid hostname", err)
		}
	case r.GetAddress():
		if validateHostname(val) != nil && net.ParseIP(val) == nil {
			return s.fail(l, "value must be a valid hostname, or ip address", nil)
		}
	case r.GetUri():
		if uri, err := url.Parse(val); err != nil {
			return s.fail(l, "value must be a valid URI", err)
		} else if !uri.IsAbs() {
			return s.fail(l, "value must be absolute", nil)
		}
	case r.GetUriRef():
		if _, err := url.Parse(val); err != nil {
			return s.fail(l, "value must be a valid URI", err)
		}
	case r.GetUuid():
		if !uuidPattern.MatchString(val) {
			return s.fail(l, "value must be a valid UUID", errors.New("invalid uuid format"))
		}
	}
	return false
}

var uuidPattern = regexp.MustCompile("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

// validateHostname is the generated _validateHostname.
func validateHostname(host string) error {
	s := strings.ToLower(strings.TrimSuffix(host, "."))
	if len(host) > 253 {
		return errors.New("hostname cannot exceed 253 characters")
	}
	for _, part := range strings.Split(s, ".") {
		if l := len(part); l == 0 || l > 63 {
			return errors.New("hostname part must be non-empty and cannot exceed 63 characters")
		}
		if part[0] == '-' {
			return errors.New("hostname parts cannot begin with hyphens")
		}
		if part[len(part)-1] == '-' {
			return errors.New("hostname parts cannot end with hyphens")
		}
		for _, r := range part {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return fmt.Errorf("hostname parts can only contain alphanumeric characters or hyphens, got %q", string(r))
			}
		}
	}
	return nil
}

// validateEmail is the generated _validateEmail.
func validateEmail(addr string) error {
	a, err := mail.ParseAddress(addr)
	if err != nil {
		return err
	}
	addr = a.Address
	if len(addr) > 254 {
		return errors.New("email addresses cannot exceed 254 characters")
	}
	parts := strings.SplitN(addr, "@", 2)
	if len(parts[0]) > 64 {
		return errors.New("email address local phrase cannot exceed 64 characters")
	}
	return validateHostname(parts[1])
}

type bytesNode struct {
	r           *validate.BytesRules
	pattern     *regexp.Regexp
	patternText string
	hasPattern  bool
}

func newBytesNode(r *validate.BytesRules) node {
	n := bytesNode{r: r}
	if r.Pattern != nil {
		n.pattern, _ = regexp.Compile(*r.Pattern)
		n.patternText = *r.Pattern
		n.hasPattern = true
	}
	return n
}

// byteStr formats bytes as the generator's byteStr: "\x61\xA".
func byteStr(b []byte) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, c := range b {
		fmt.Fprintf(&sb, `\x%X`, c)
	}
	sb.WriteByte('"')
	return sb.String()
}

func (n bytesNode) check(s *sink, l loc, v protoreflect.Value, _ bool) bool {
	val := v.Bytes()
	r := n.r
	if r.GetIgnoreEmpty() && len(val) == 0 {
		return false
	}
	if checkByteLen(s, l, uint64(len(val)), r.Len, r.MinLen, r.MaxLen) {
		return true
	}
	if len(r.Prefix) > 0 && !bytes.HasPrefix(val, r.Prefix) && s.fail(l, "value does not have prefix "+byteStr(r.Prefix), nil) {
		return true
	}
	if len(r.Suffix) > 0 && !bytes.HasSuffix(val, r.Suffix) && s.fail(l, "value does not have suffix "+byteStr(r.Suffix), nil) {
		return true
	}
	if len(r.Contains) > 0 && !bytes.Contains(val, r.Contains) && s.fail(l, "value does not contain "+byteStr(r.Contains), nil) {
		return true
	}
	if len(r.In) > 0 {
		if !containsBytes(r.In, val) && s.fail(l, sprint("value must be in list ", r.In), nil) {
			return true
		}
	} else if len(r.NotIn) > 0 {
		if containsBytes(r.NotIn, val) && s.fail(l, sprint("value must not be in list ", r.NotIn), nil) {
			return true
		}
	}
	if len(r.Const) > 0 && !bytes.Equal(val, r.Const) && s.fail(l, sprint("value must equal ", r.Const), nil) {
		return true
	}
	switch {
	case r.GetIp():
		if net.IP(val).To16() == nil && s.fail(l, "value must be a valid IP address", nil) {
			return true
		}
	case r.GetIpv4():
		if net.IP(val).To4() == nil && s.fail(l, "value must be a valid IPv4 address", nil) {
			return true
		}
	case r.GetIpv6():
		if ip := net.IP(val); (ip.To16() == nil || ip.To4() != nil) && s.fail(l, "value must be a valid IPv6 address", nil) {
			return true
		}
	}
	if n.hasPattern && (n.pattern == nil || !n.pattern.Match(val)) {
		return s.fail(l, fmt.Sprintf("value does not match regex pattern %q", n.patternText), nil)
	}
	return false
}

func containsBytes(list [][]byte, v []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, v) {
			return true
		}
	}
	return false
}
