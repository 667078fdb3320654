package route

import (
	"fmt"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"

	// Types packed in Any fields, registered for JSON rendering and validation.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/priority/previous_priorities/v3"
)

// fixture is the input of one generation: YAML files and the proxy.
type fixture struct {
	files []string
	// Proxy: namespace "default" and labels app=sleep unless set; no
	// address unless ip is set.
	namespace string
	labels    map[string]string
	ip        string
	generator string
	// mesh edits the mesh configuration (default: model.DefaultMesh()).
	mesh func(*meshconfig.MeshConfig)
}

// scope builds the snapshot (services and endpoints from ServiceEntries
// and WorkloadEntries) and the proxy's scope.
func (f fixture) scope(t testing.TB) *model.Scope {
	t.Helper()
	return f.scopeOf(gentest.Files(t, f.files...))
}

func (f fixture) scopeOf(cfgs []config.Config) *model.Scope {
	return gentest.NewSnapshot(f.meshConfig(), cfgs).Scope(f.proxy())
}

// scopeWith builds a scope over hand-made services.
func (f fixture) scopeWith(cfgs []config.Config, svcs []*model.Service) *model.Scope {
	snap := model.NewSnapshot(model.SnapshotInput{Version: "test", Mesh: f.meshConfig(), Configs: cfgs, Services: svcs})
	return snap.Scope(f.proxy())
}

func (f fixture) meshConfig() *meshconfig.MeshConfig {
	m := model.DefaultMesh()
	if f.mesh != nil {
		f.mesh(m)
	}
	return m
}

func (f fixture) proxy() *model.Proxy {
	ns := f.namespace
	if ns == "" {
		ns = "default"
	}
	labels := f.labels
	if labels == nil {
		labels = map[string]string{"app": "sleep"}
	}
	p := gentest.Proxy(f.ip, ns, labels)
	p.Generator = f.generator
	return p
}

func messages(rcs []*routev3.RouteConfiguration) []proto.Message {
	out := make([]proto.Message, len(rcs))
	for i, rc := range rcs {
		out[i] = rc
	}
	return out
}

// validate runs the PGV checks on m and every message inside it, including
// those packed in Any fields (per-filter configs, retry extensions), which
// ValidateAll alone does not open.
func validate(t testing.TB, m proto.Message) {
	t.Helper()
	if err := validateAll(m.ProtoReflect()); err != nil {
		t.Errorf("%v", err)
	}
}

func validateAll(m protoreflect.Message) error {
	msg := m.Interface()
	if a, ok := msg.(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("any %s: %w", a.GetTypeUrl(), err)
		}
		return validateAll(inner.ProtoReflect())
	}
	if v, ok := msg.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s: %w", m.Descriptor().FullName(), err)
		}
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					err = validateAll(mv.Message())
					return err == nil
				})
			}
		case fd.IsList():
			if fd.Message() != nil {
				for i := 0; i < v.List().Len() && err == nil; i++ {
					err = validateAll(v.List().Get(i).Message())
				}
			}
		case fd.Message() != nil:
			err = validateAll(v.Message())
		}
		return err == nil
	})
	return err
}
