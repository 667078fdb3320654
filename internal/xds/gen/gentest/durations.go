package gentest

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// normalizeDurations rewrites, in a decoded JSON spec, Duration fields
// written the Go way ("30m", "1h30m", as Istio's documentation does) into
// the seconds form protojson accepts ("1800s"). It walks the message
// descriptor alongside the JSON value.
func normalizeDurations(v any, md protoreflect.MessageDescriptor) any {
	obj, ok := v.(map[string]any)
	if !ok || md == nil {
		return v
	}
	for k, fv := range obj {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(k))
		}
		if fd == nil {
			continue
		}
		if fd.IsMap() {
			if m, ok := fv.(map[string]any); ok && fd.MapValue().Message() != nil {
				for mk, mv := range m {
					m[mk] = normalizeValue(mv, fd.MapValue().Message())
				}
			}
			continue
		}
		if fd.Message() == nil {
			continue
		}
		if fd.IsList() {
			if list, ok := fv.([]any); ok {
				for i, e := range list {
					list[i] = normalizeValue(e, fd.Message())
				}
			}
			continue
		}
		obj[k] = normalizeValue(fv, fd.Message())
	}
	return obj
}

func normalizeValue(v any, md protoreflect.MessageDescriptor) any {
	switch md.FullName() {
	case "google.protobuf.Duration":
		if s, ok := v.(string); ok {
			if d, err := time.ParseDuration(s); err == nil {
				return protoDuration(d)
			}
		}
		return v
	case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Any", "google.protobuf.ListValue":
		return v
	}
	return normalizeDurations(v, md)
}

// protoDuration formats d as protojson wants it: decimal seconds with an
// "s" suffix and no trailing zeros.
func protoDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
	}
	secs := d / time.Second
	nanos := d % time.Second
	if secs < 0 {
		secs = -secs
	}
	if nanos < 0 {
		nanos = -nanos
	}
	s := sign + strconv.FormatInt(int64(secs), 10)
	if nanos != 0 {
		s += "." + strings.TrimRight(strconv.FormatInt(int64(nanos)+1e9, 10)[1:], "0")
	}
	return s + "s"
}
