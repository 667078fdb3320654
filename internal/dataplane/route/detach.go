package route

import (
	"bytes"
	"strings"
	"unique"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The compiled table must hold nothing of the decoded RouteConfiguration:
// a pointer into it keeps the message (and, through Config fields, whole
// virtual hosts and routes) alive for as long as the table serves. The
// helpers below copy what the table keeps out of the message.

// str returns a copy of s that does not share the decoded message's
// memory. Equal strings compiled close together (route names such as
// Istio's "default", cluster names that CDS also carries) share one copy
// through unique; sharing is best effort, the copy is not.
func str(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// strs copies a string list with str.
func strs(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = str(s)
	}
	return out
}

// detachMetadata deep-copies a metadata_match; nil stays nil.
func detachMetadata(m *corev3.Metadata) *corev3.Metadata {
	if m == nil {
		return nil
	}
	return proto.Clone(m).(*corev3.Metadata)
}

// detachAny copies a typed config out of the decoded message; nil stays
// nil.
func detachAny(a *anypb.Any) *anypb.Any {
	if a == nil {
		return nil
	}
	return &anypb.Any{TypeUrl: strings.Clone(a.GetTypeUrl()), Value: bytes.Clone(a.GetValue())}
}

// istioConfig is filter_metadata["istio"]["config"] of m, copied, or "".
func istioConfig(m *corev3.Metadata) string {
	s := m.GetFilterMetadata()["istio"]
	if s == nil {
		return ""
	}
	return str(s.GetFields()["config"].GetStringValue())
}

// optUint32 reads a wrapped uint32.
func optUint32(v *wrapperspb.UInt32Value) OptionalUint32 {
	if v == nil {
		return OptionalUint32{}
	}
	return OptionalUint32{V: v.GetValue(), Set: true}
}
