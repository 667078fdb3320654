package accesslog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
)

// DefaultFormat is Envoy's default access log format, used when a logger
// sets none.
const DefaultFormat = `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ` +
	`%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ` +
	`%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" ` +
	`"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"` + "\n"

// Format is a compiled access log format: text, or JSON objects (one per
// line). It is immutable and safe for concurrent use.
type Format struct {
	text []segment // text format
	json *object   // JSON format
	// omitEmpty drops JSON keys without a value and prints nothing
	// (rather than "-") for a text operator without one.
	omitEmpty bool
}

// segment is a literal or one command operator.
type segment struct {
	lit string
	op  *operator
}

// object is a JSON format node: fields sorted by key.
type object struct {
	keys   []string
	values []jsonValue
}

// jsonValue is one field of a JSON format: a template (a string holding
// operators), a nested object, or a literal JSON value.
type jsonValue struct {
	tmpl []segment // a lone operator keeps its type (number, string, null)
	obj  *object
	raw  []byte // a literal number, bool or null, already encoded
}

// entry is what one line is formatted from: an HTTP request's record or a
// closed TCP session.
type entry struct {
	rec  *filter.Record
	sess *tcp.Session
	end  time.Time // TCP: when the session was logged
}

// kind is the type of an operator's value.
type kind uint8

const (
	none kind = iota // no value: "-" in text, null in JSON
	str
	num
	stamp
)

type value struct {
	kind kind
	s    string
	n    int64
	t    time.Time
}

// compileSubstitution compiles a SubstitutionFormatString. field names it
// for errors.
func compileSubstitution(sf *corev3.SubstitutionFormatString) (*Format, error) {
	if len(sf.GetFormatters()) > 0 {
		return nil, errors.New("formatters: formatter extensions are not supported")
	}
	var f *Format
	var err error
	switch v := sf.GetFormat().(type) {
	case *corev3.SubstitutionFormatString_TextFormat:
		f, err = compileText(v.TextFormat)
	case *corev3.SubstitutionFormatString_TextFormatSource:
		ds := v.TextFormatSource
		switch ds.GetSpecifier().(type) {
		case *corev3.DataSource_InlineString:
			f, err = compileText(ds.GetInlineString())
		case *corev3.DataSource_InlineBytes:
			f, err = compileText(string(ds.GetInlineBytes()))
		default:
			return nil, errors.New("text_format_source: only inline_string and inline_bytes are supported")
		}
		if err != nil {
			err = fmt.Errorf("text_format_source: %w", err)
		}
	case *corev3.SubstitutionFormatString_JsonFormat:
		f, err = compileJSON(v.JsonFormat)
		if err != nil {
			err = fmt.Errorf("json_format: %w", err)
		}
	default:
		return nil, errors.New("no format set")
	}
	if err != nil {
		return nil, err
	}
	f.omitEmpty = sf.GetOmitEmptyValues()
	return f, nil
}

// compileText compiles a text format (command operators between literals).
func compileText(s string) (*Format, error) {
	segs, err := parseTemplate(s)
	if err != nil {
		return nil, err
	}
	return &Format{text: segs}, nil
}

// compileJSON compiles a json_format struct.
func compileJSON(st *structpb.Struct) (*Format, error) {
	if len(st.GetFields()) == 0 {
		return nil, errors.New("empty JSON format")
	}
	obj, err := compileObject(st, "")
	if err != nil {
		return nil, err
	}
	return &Format{json: obj}, nil
}

func compileObject(st *structpb.Struct, path string) (*object, error) {
	o := &object{}
	for k := range st.GetFields() {
		o.keys = append(o.keys, k)
	}
	sort.Strings(o.keys)
	for _, k := range o.keys {
		where := path + k
		var jv jsonValue
		switch v := st.GetFields()[k].GetKind().(type) {
		case *structpb.Value_StringValue:
			segs, err := parseTemplate(v.StringValue)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			jv.tmpl = segs
		case *structpb.Value_StructValue:
			sub, err := compileObject(v.StructValue, where+".")
			if err != nil {
				return nil, err
			}
			jv.obj = sub
		case *structpb.Value_NumberValue:
			jv.raw = strconv.AppendFloat(nil, v.NumberValue, 'g', -1, 64)
		case *structpb.Value_BoolValue:
			jv.raw = strconv.AppendBool(nil, v.BoolValue)
		case *structpb.Value_NullValue:
			jv.raw = []byte("null")
		default:
			return nil, fmt.Errorf("%s: lists are not supported in a JSON format", where)
		}
		o.values = append(o.values, jv)
	}
	return o, nil
}

// parseTemplate splits s into literals and command operators:
// %NAME%, %NAME(ARG)%, %NAME(ARG):MAXLEN%.
func parseTemplate(s string) ([]segment, error) {
	var segs []segment
	var lit strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		end, op, err := parseCommand(s, i)
		if err != nil {
			return nil, err
		}
		if lit.Len() > 0 {
			segs = append(segs, segment{lit: lit.String()})
			lit.Reset()
		}
		segs = append(segs, segment{op: op})
		i = end
	}
	if lit.Len() > 0 {
		segs = append(segs, segment{lit: lit.String()})
	}
	return segs, nil
}

// parseCommand parses the operator starting at s[start] ('%') and returns
// the index after its closing '%'.
func parseCommand(s string, start int) (int, *operator, error) {
	i := start + 1
	j := i
	for j < len(s) && (s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
		j++
	}
	name := s[i:j]
	if name == "" {
		return 0, nil, fmt.Errorf("position %d: %q does not start a command operator", start, "%")
	}
	var arg string
	hasArg := false
	if j < len(s) && s[j] == '(' {
		k := strings.IndexByte(s[j:], ')')
		if k < 0 {
			return 0, nil, fmt.Errorf("position %d: %%%s: missing ')'", start, name)
		}
		arg, hasArg = s[j+1:j+k], true
		j += k + 1
	}
	maxLen := 0
	if j < len(s) && s[j] == ':' {
		k := j + 1
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		n, err := strconv.Atoi(s[j+1 : k])
		if err != nil || n <= 0 {
			return 0, nil, fmt.Errorf("position %d: %%%s: invalid maximum length", start, name)
		}
		maxLen, j = n, k
	}
	if j >= len(s) || s[j] != '%' {
		return 0, nil, fmt.Errorf("position %d: %%%s: missing closing '%%'", start, name)
	}
	op, err := newOperator(name, arg, hasArg)
	if err != nil {
		return 0, nil, fmt.Errorf("%%%s%%: %w", name, err)
	}
	op.maxLen = maxLen
	return j + 1, op, nil
}

// Append formats one line for e onto dst.
func (f *Format) append(dst []byte, e *entry) []byte {
	if f.json != nil {
		dst = f.appendObject(dst, f.json, e)
		return append(dst, '\n')
	}
	for i := range f.text {
		sg := &f.text[i]
		if sg.op == nil {
			dst = append(dst, sg.lit...)
			continue
		}
		v := sg.op.eval(e)
		if v.kind == none {
			if !f.omitEmpty {
				dst = append(dst, '-')
			}
			continue
		}
		dst = appendText(dst, v, sg.op)
	}
	return dst
}

func (f *Format) appendObject(dst []byte, o *object, e *entry) []byte {
	dst = append(dst, '{')
	first := true
	for i, k := range o.keys {
		jv := &o.values[i]
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		switch {
		case jv.obj != nil:
			dst = f.appendObject(dst, jv.obj, e)
		case jv.raw != nil:
			dst = append(dst, jv.raw...)
		case len(jv.tmpl) == 1 && jv.tmpl[0].op != nil:
			op := jv.tmpl[0].op
			v := op.eval(e)
			switch v.kind {
			case none:
				if f.omitEmpty {
					dst = dst[:mark]
					continue
				}
				dst = append(dst, "null"...)
			case num:
				dst = strconv.AppendInt(dst, v.n, 10)
			default:
				dst = append(dst, '"')
				dst = appendEscaped(dst, appendText(nil, v, op))
				dst = append(dst, '"')
			}
		default:
			var s []byte
			for j := range jv.tmpl {
				sg := &jv.tmpl[j]
				if sg.op == nil {
					s = append(s, sg.lit...)
					continue
				}
				v := sg.op.eval(e)
				if v.kind == none {
					s = append(s, '-')
					continue
				}
				s = appendText(s, v, sg.op)
			}
			dst = append(dst, '"')
			dst = appendEscaped(dst, s)
			dst = append(dst, '"')
		}
		first = false
	}
	return append(dst, '}')
}

// appendText appends a value as text, cut to the operator's max length.
func appendText(dst []byte, v value, op *operator) []byte {
	mark := len(dst)
	switch v.kind {
	case str:
		dst = append(dst, v.s...)
	case num:
		dst = strconv.AppendInt(dst, v.n, 10)
	case stamp:
		dst = op.time.append(dst, v.t)
	}
	if op.maxLen > 0 && len(dst)-mark > op.maxLen {
		dst = dst[:mark+op.maxLen]
	}
	return dst
}

func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, []byte(s))
	return append(dst, '"')
}

// appendEscaped escapes a JSON string's content: quotes, backslashes and
// control characters; invalid UTF-8 becomes U+FFFD.
func appendEscaped(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, "\ufffd"...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// addr renders an address operator's value.
func addr(ap netip.AddrPort, withPort bool) value {
	if !ap.IsValid() {
		return value{}
	}
	if withPort {
		return value{kind: str, s: ap.String()}
	}
	return value{kind: str, s: ap.Addr().String()}
}

func traceID(id [16]byte) value {
	if id == ([16]byte{}) {
		return value{}
	}
	return value{kind: str, s: hex.EncodeToString(id[:])}
}
