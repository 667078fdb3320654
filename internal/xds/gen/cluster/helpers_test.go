package cluster

import (
	"path/filepath"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

func toMsgs(cs []*clusterv3.Cluster) []proto.Message {
	out := make([]proto.Message, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

func local(name string) string { return filepath.Join("testdata", name) }

func sample(t *testing.T, name string) string {
	return gentest.Sample(t, "bookinfo/networking/"+name)
}

// productpage is the usual test proxy: Bookinfo's productpage-v1 workload.
func productpage() *model.Proxy {
	return gentest.Proxy("10.0.0.1", "default", map[string]string{"app": "productpage", "version": "v1"})
}

// scope builds the productpage proxy's scope over Bookinfo plus files.
func scope(t *testing.T, mesh *meshconfig.MeshConfig, files ...string) *model.Scope {
	t.Helper()
	cfgs := gentest.Files(t, append([]string{gentest.Bookinfo()}, files...)...)
	return gentest.NewSnapshot(mesh, cfgs).Scope(productpage())
}

func scopeOf(mesh *meshconfig.MeshConfig, cfgs []config.Config, p *model.Proxy) *model.Scope {
	return gentest.NewSnapshot(mesh, cfgs).Scope(p)
}

func find(t *testing.T, cs []*clusterv3.Cluster, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

func mesh(edit func(m *meshconfig.MeshConfig)) *meshconfig.MeshConfig {
	m := model.DefaultMesh()
	edit(m)
	return m
}

type meshconfigMesh = meshconfig.MeshConfig

func boolValue(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }
