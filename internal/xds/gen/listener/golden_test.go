package listener

import (
	"fmt"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validateAll runs the PGV rules on every listener and on every typed
// config inside it (unpacked from its Any, recursively).
func validateAll(t testing.TB, listeners []*listenerv3.Listener) {
	t.Helper()
	for _, l := range listeners {
		if err := l.ValidateAll(); err != nil {
			t.Errorf("listener %s: %v", l.GetName(), err)
		}
		for _, err := range validateAnys(l.ProtoReflect(), l.GetName()) {
			t.Error(err)
		}
	}
}

type validator interface{ ValidateAll() error }

func validateAnys(m protoreflect.Message, path string) []error {
	var errs []error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					errs = append(errs, validateMessage(mv.Message(), fmt.Sprintf("%s[%v]", p, k.Interface()))...)
					return true
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len(); i++ {
					errs = append(errs, validateMessage(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))...)
				}
			}
		case fd.Message() != nil:
			errs = append(errs, validateMessage(v.Message(), p)...)
		}
		return true
	})
	return errs
}

func validateMessage(m protoreflect.Message, path string) []error {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return validateAnys(m, path)
	}
	if a == nil || a.GetTypeUrl() == "" {
		return []error{fmt.Errorf("%s: empty typed_config", path)}
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return []error{fmt.Errorf("%s: unpacking %s: %v", path, a.GetTypeUrl(), err)}
	}
	var errs []error
	if v, ok := inner.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %v", path, a.GetTypeUrl(), err))
		}
	} else {
		errs = append(errs, fmt.Errorf("%s: %s has no PGV validation", path, a.GetTypeUrl()))
	}
	return append(errs, validateAnys(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">")...)
}

// unpack returns the typed configs of a listener's filters of one type, in
// order, searching filter chains and the default chain.
func unpack[T proto.Message](t testing.TB, l *listenerv3.Listener) []T {
	t.Helper()
	var out []T
	chains := append([]*listenerv3.FilterChain(nil), l.GetFilterChains()...)
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			m, err := f.GetTypedConfig().UnmarshalNew()
			if err != nil {
				t.Fatalf("%s: %v", l.GetName(), err)
			}
			if v, ok := m.(T); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// TestValidateAllSeesInsideTypedConfigs guards the harness: an invalid
// tcp_proxy nested in a filter's Any must be reported.
func TestValidateAllSeesInsideTypedConfigs(t *testing.T) {
	l := &listenerv3.Listener{
		Name: "bad",
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       tcpProxyFilter,
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: toAny(&tcpv3.TcpProxy{})}, // no stat_prefix
		}}}},
	}
	if errs := validateAnys(l.ProtoReflect(), "bad"); len(errs) == 0 {
		t.Fatal("invalid nested TcpProxy not reported")
	}
}
