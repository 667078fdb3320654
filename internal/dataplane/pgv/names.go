package pgv

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// goCamelCase converts a protobuf identifier to the Go identifier
// protoc-gen-go (and protoc-gen-validate, which names fields and types the
// same way) derives from it: "connect_timeout" → "ConnectTimeout",
// "Cluster.EdsClusterConfig" → "Cluster_EdsClusterConfig".
func goCamelCase(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.' && i+1 < len(s) && isLower(s[i+1]):
			// ".{{lowercase}}" drops the dot.
		case c == '.':
			b = append(b, '_')
		case c == '_' && (i == 0 || s[i-1] == '.'):
			b = append(b, 'X') // a leading underscore would not be exported
		case c == '_' && i+1 < len(s) && isLower(s[i+1]):
			// "_{{lowercase}}" drops the underscore.
		case isDigit(c):
			b = append(b, c)
		default:
			if isLower(c) {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			for ; i+1 < len(s) && isLower(s[i+1]); i++ {
				b = append(b, s[i+1])
			}
		}
	}
	return string(b)
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// goTypeName is the Go name of the generated type of md: its full name
// without the package, camel-cased, nested names joined by "_".
func goTypeName(md protoreflect.MessageDescriptor) string {
	name := string(md.FullName())
	if pkg := string(md.ParentFile().Package()); pkg != "" {
		name = strings.TrimPrefix(name, pkg+".")
	}
	return goCamelCase(name)
}

// pgvTrees are the proto source trees whose every file is run through
// protoc-gen-validate by the Go modules that ship them (go-control-plane
// for envoy/ and contrib/envoy/, cncf/xds for xds/ and udpa/), so their
// messages have Validate methods even when they declare no rule.
var pgvTrees = []string{"envoy/", "contrib/envoy/", "xds/", "udpa/"}

// hasValidate reports whether PGV generated code for md's file: the file
// belongs to a PGV-generated tree or imports validate/validate.proto.
// (Messages marked (validate.ignored) still get no methods; compileMessage
// handles them.) Well-known types (Any, Duration, Struct, wrappers)
// and other third-party protos (OpenTelemetry, CEL) have none, so the
// generated code never looks inside them.
func hasValidate(md protoreflect.MessageDescriptor) bool {
	f := md.ParentFile()
	if f == nil {
		return false
	}
	path := f.Path()
	for _, p := range pgvTrees {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	imps := f.Imports()
	for i := 0; i < imps.Len(); i++ {
		if imps.Get(i).Path() == "validate/validate.proto" {
			return true
		}
	}
	return false
}
