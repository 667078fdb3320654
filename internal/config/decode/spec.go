package decode

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/trellismesh/trellis/internal/config/schema"
)

// decodeSpec decodes the spec of an object of schema sc found at path p.
//
// The generic tree is first walked against the message descriptor: that
// finds unknown fields, wrong JSON types and unknown enum values with their
// exact path, and rewrites durations from Go form ("1m") to protobuf JSON
// form ("60s"). protojson then does the actual decoding, strictly; should
// it still object, its error position is mapped back to a field path.
func decodeSpec(r *report, sc schema.Schema, v any, p fieldPath) (proto.Message, bool) {
	msg := sc.New()
	if v == nil {
		return msg, true // no spec: an empty spec, which validation judges
	}
	if _, ok := v.(map[string]any); !ok {
		r.add(p, "must be an object, not %s", describe(v))
		return nil, false
	}
	before := len(r.errs)
	w := walker{r: r}
	v = w.message(msg.ProtoReflect().Descriptor(), v, p)
	if len(r.errs) > before {
		return nil, false
	}
	data, err := json.Marshal(v)
	if err != nil {
		r.add(p, "%v", err)
		return nil, false
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, msg); err != nil {
		field, reason := protoError(err, data, p)
		r.add(field, "%s", reason)
		return nil, false
	}
	return msg, true
}

// walker checks a generic tree against a message descriptor.
type walker struct {
	r *report
}

const durationName = "google.protobuf.Duration"

// opaque are well-known types whose JSON form protojson checks alone.
var opaque = map[protoreflect.FullName]bool{
	"google.protobuf.Struct": true, "google.protobuf.Value": true, "google.protobuf.ListValue": true,
	"google.protobuf.Any": true, "google.protobuf.Timestamp": true, "google.protobuf.FieldMask": true,
	"google.protobuf.Empty": true,
}

// wrappers are the well-known scalar wrapper messages.
var wrappers = map[protoreflect.FullName]bool{
	"google.protobuf.DoubleValue": true, "google.protobuf.FloatValue": true,
	"google.protobuf.Int64Value": true, "google.protobuf.UInt64Value": true,
	"google.protobuf.Int32Value": true, "google.protobuf.UInt32Value": true,
	"google.protobuf.BoolValue": true, "google.protobuf.StringValue": true,
	"google.protobuf.BytesValue": true,
}

// message checks v as a message of type md and returns it, rewritten where
// protojson needs another form.
func (w *walker) message(md protoreflect.MessageDescriptor, v any, p fieldPath) any {
	switch {
	case v == nil || opaque[md.FullName()]:
		return v
	case md.FullName() == durationName:
		return w.duration(v, p)
	case wrappers[md.FullName()]:
		return w.single(md.Fields().ByName("value"), v, p)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		w.r.add(p, "must be an object, not %s", describe(v))
		return v
	}
	fields := md.Fields()
	seen := make(map[protoreflect.FieldNumber]string)
	oneofs := make(map[protoreflect.FullName]string)
	for _, k := range sortedKeys(obj) {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd == nil {
			w.r.add(p.child(k), "unknown field %q%s", k, suggest(md, k))
			continue
		}
		if prev, dup := seen[fd.Number()]; dup {
			w.r.add(p.child(k), "field is set twice (as %q and %q)", prev, k)
			continue
		}
		seen[fd.Number()] = k
		fv := obj[k]
		if fv == nil {
			continue // null leaves the field unset
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if prev, dup := oneofs[od.FullName()]; dup {
				w.r.add(p.child(k), "only one of %s may be set; %q is set too", oneofFields(od), prev)
				continue
			}
			oneofs[od.FullName()] = k
		}
		obj[k] = w.field(fd, fv, p.child(k))
	}
	return obj
}

// field checks the value of a (possibly repeated or map) field.
func (w *walker) field(fd protoreflect.FieldDescriptor, v any, p fieldPath) any {
	switch {
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			w.r.add(p, "must be a map, not %s", describe(v))
			return v
		}
		for _, k := range sortedKeys(m) {
			if reason := mapKeyProblem(fd.MapKey().Kind(), k); reason != "" {
				w.r.add(p.key(k), "invalid key: %s", reason)
				continue
			}
			if m[k] == nil {
				w.r.add(p.key(k), "must not be null")
				continue
			}
			m[k] = w.single(fd.MapValue(), m[k], p.key(k))
		}
		return m
	case fd.IsList():
		l, ok := v.([]any)
		if !ok {
			w.r.add(p, "must be a list, not %s", describe(v))
			return v
		}
		for i, e := range l {
			if e == nil {
				w.r.add(p.index(i), "must not be null")
				continue
			}
			l[i] = w.single(fd, e, p.index(i))
		}
		return l
	}
	return w.single(fd, v, p)
}

// single checks one value of a field's element type.
func (w *walker) single(fd protoreflect.FieldDescriptor, v any, p fieldPath) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return w.message(fd.Message(), v, p)
	case protoreflect.EnumKind:
		ed := fd.Enum()
		if ed.FullName() == "google.protobuf.NullValue" {
			return v
		}
		if s, ok := v.(string); ok && ed.Values().ByName(protoreflect.Name(s)) != nil {
			return v
		}
		names := make([]string, ed.Values().Len())
		for i := range names {
			names[i] = string(ed.Values().Get(i).Name())
		}
		w.r.add(p, "invalid value %s: want one of %s", describeValue(v), strings.Join(names, ", "))
		return v
	}
	if reason := scalarProblem(fd.Kind(), v); reason != "" {
		hint := ""
		if fd.Kind() == protoreflect.StringKind {
			// YAML 1.1 reads unquoted y, n, yes, no, on, off as booleans.
			hint = " (quote the value)"
		}
		w.r.add(p, "invalid value %s: want %s%s", describeValue(v), reason, hint)
	}
	return v
}

// duration accepts Go durations ("1h2m", "100ms") as Istio does, and
// returns the protobuf JSON form.
func (w *walker) duration(v any, p fieldPath) any {
	s, ok := v.(string)
	if !ok {
		w.r.add(p, "invalid duration %s: want a string such as \"5s\" or \"100ms\"", describeValue(v))
		return v
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		w.r.add(p, "invalid duration %q", s)
		return v
	}
	return protoDuration(d)
}

// protoDuration formats d as protobuf JSON does: seconds with up to nine
// fractional digits and an "s" suffix.
func protoDuration(d time.Duration) string {
	sign := ""
	u := uint64(d)
	if d < 0 {
		sign = "-"
		u = uint64(-(d + 1)) + 1 // no overflow for math.MinInt64
	}
	secs, nanos := u/1e9, u%1e9
	if nanos == 0 {
		return sign + strconv.FormatUint(secs, 10) + "s"
	}
	frac := strings.TrimRight(fmt.Sprintf("%09d", nanos), "0")
	return sign + strconv.FormatUint(secs, 10) + "." + frac + "s"
}

// scalarProblem says what v should have been for a scalar kind, or "".
func scalarProblem(k protoreflect.Kind, v any) string {
	switch k {
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return "a string"
		}
	case protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return "a base64 string"
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return "true or false"
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		if !isInteger(v, math.MinInt32, math.MaxInt32) {
			return "an integer between -2147483648 and 2147483647"
		}
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		if !isInteger(v, 0, math.MaxUint32) {
			return "an integer between 0 and 4294967295"
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		if !isInteger(v, math.MinInt64, math.MaxInt64) {
			return "a 64-bit integer"
		}
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if _, ok := v.(uint64); !ok && !isInteger(v, 0, math.MaxInt64) {
			return "a non-negative integer"
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		switch v.(type) {
		case int64, uint64, float64:
		default:
			return "a number"
		}
	}
	return ""
}

// isInteger reports whether v is an integral number within [lo, hi].
func isInteger(v any, lo, hi float64) bool {
	switch n := v.(type) {
	case int64:
		return float64(n) >= lo && float64(n) <= hi
	case uint64:
		return float64(n) <= hi
	case float64:
		return n == math.Trunc(n) && n >= lo && n <= hi && math.Abs(n) < 1<<53
	}
	return false
}

// mapKeyProblem checks a JSON object key against a map's key kind.
func mapKeyProblem(k protoreflect.Kind, key string) string {
	var err error
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		_, err = strconv.ParseInt(key, 10, 32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		_, err = strconv.ParseInt(key, 10, 64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		_, err = strconv.ParseUint(key, 10, 32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		_, err = strconv.ParseUint(key, 10, 64)
	case protoreflect.BoolKind:
		_, err = strconv.ParseBool(key)
	}
	if err != nil {
		return fmt.Sprintf("%q is not a valid %s", key, k)
	}
	return ""
}

func describeValue(v any) string {
	if s, ok := v.(string); ok {
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return strconv.Quote(s)
	}
	return describe(v)
}

func oneofFields(od protoreflect.OneofDescriptor) string {
	names := make([]string, od.Fields().Len())
	for i := range names {
		names[i] = od.Fields().Get(i).JSONName()
	}
	return strings.Join(names, ", ")
}

// suggest proposes the field the user probably meant.
func suggest(md protoreflect.MessageDescriptor, key string) string {
	best, bestDist := "", 3
	if len(key) <= 4 {
		bestDist = 2
	}
	for i := 0; i < md.Fields().Len(); i++ {
		fd := md.Fields().Get(i)
		for _, name := range []string{fd.JSONName(), string(fd.Name())} {
			if strings.EqualFold(name, key) {
				return fmt.Sprintf(" (did you mean %q?)", fd.JSONName())
			}
			if d := editDistance(strings.ToLower(key), strings.ToLower(name), bestDist); d < bestDist {
				best, bestDist = fd.JSONName(), d
			}
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance of a and b, or limit when it is
// at least limit.
func editDistance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 {
		return limit
	}
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

var protoPosition = regexp.MustCompile(`\(line (\d+):(\d+)\): (.*)$`)

// protoError turns a protojson error into a field path and a reason. The
// error carries a line:column position into data; data is compact JSON, so
// the position is found by scanning data for the value or key that starts
// there.
func protoError(err error, data []byte, root fieldPath) (fieldPath, string) {
	msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	msg = strings.TrimPrefix(msg, "proto: ")
	m := protoPosition.FindStringSubmatch(msg)
	if m == nil {
		return root, msg
	}
	line, err1 := strconv.Atoi(m[1])
	col, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return root, m[3]
	}
	off := offset(data, line, col)
	s := jsonScanner{data: data, target: off}
	if p, ok := s.value(root); ok {
		return p, m[3]
	}
	return root, m[3]
}

// offset converts a 1-based line and rune column into a byte offset.
func offset(data []byte, line, col int) int {
	pos := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(data[pos:], '\n')
		if i < 0 {
			return -1
		}
		pos += i + 1
	}
	for c := 1; c < col && pos < len(data); c++ {
		_, size := utf8.DecodeRune(data[pos:])
		pos += size
	}
	return pos
}

// jsonScanner finds the path of the JSON value or object key that starts at
// byte offset target of valid JSON data.
type jsonScanner struct {
	data   []byte
	pos    int
	target int
}

func (s *jsonScanner) ws() {
	for s.pos < len(s.data) && strings.IndexByte(" \t\r\n", s.data[s.pos]) >= 0 {
		s.pos++
	}
}

func (s *jsonScanner) value(p fieldPath) (fieldPath, bool) {
	s.ws()
	if s.pos >= len(s.data) {
		return "", false
	}
	if s.pos == s.target {
		return p, true
	}
	switch s.data[s.pos] {
	case '{':
		s.pos++
		for {
			s.ws()
			if s.pos >= len(s.data) || s.data[s.pos] == '}' {
				s.pos++
				return "", false
			}
			start := s.pos
			key := s.str()
			if start == s.target {
				return p.child(key), true
			}
			s.ws()
			s.pos++ // ':'
			if found, ok := s.value(p.child(key)); ok {
				return found, true
			}
			s.ws()
			if s.pos < len(s.data) && s.data[s.pos] == ',' {
				s.pos++
			}
		}
	case '[':
		s.pos++
		for i := 0; ; i++ {
			s.ws()
			if s.pos >= len(s.data) || s.data[s.pos] == ']' {
				s.pos++
				return "", false
			}
			if found, ok := s.value(p.index(i)); ok {
				return found, true
			}
			s.ws()
			if s.pos < len(s.data) && s.data[s.pos] == ',' {
				s.pos++
			}
		}
	case '"':
		start := s.pos
		s.str()
		return p, start < s.target && s.target < s.pos
	}
	start := s.pos
	for s.pos < len(s.data) && strings.IndexByte(",]} \t\r\n", s.data[s.pos]) < 0 {
		s.pos++
	}
	return p, start < s.target && s.target < s.pos
}

// str scans a JSON string and returns its value.
func (s *jsonScanner) str() string {
	start := s.pos
	s.pos++ // opening quote
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '\\':
			s.pos += 2
			continue
		case '"':
			s.pos++
			var out string
			if json.Unmarshal(s.data[start:s.pos], &out) != nil {
				return string(s.data[start:s.pos])
			}
			return out
		}
		s.pos++
	}
	return string(s.data[start:])
}
