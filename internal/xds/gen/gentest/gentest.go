package gentest

import (
	"path/filepath"
	"runtime"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

// Files decodes YAML files into configs, failing the test on error.
func Files(t testing.TB, paths ...string) []config.Config {
	t.Helper()
	cfgs, err := ReadFiles(paths...)
	if err != nil {
		t.Fatalf("reading fixtures: %v", err)
	}
	return cfgs
}

// YAML decodes inline YAML (several documents allowed), failing the test on error.
func YAML(t testing.TB, src string) []config.Config {
	t.Helper()
	cfgs, err := Decode(t.Name(), []byte(src))
	if err != nil {
		t.Fatalf("decoding inline YAML: %v", err)
	}
	return cfgs
}

// NewSnapshot builds a snapshot of cfgs with services and endpoints derived
// by Registry. A nil mesh means model.DefaultMesh().
func NewSnapshot(mesh *meshconfig.MeshConfig, cfgs []config.Config) *model.Snapshot {
	services, endpoints := Registry(cfgs, model.DefaultDomainSuffix)
	return model.NewSnapshot(model.SnapshotInput{
		Version:   "test",
		Mesh:      mesh,
		Configs:   cfgs,
		Services:  services,
		Endpoints: endpoints,
	})
}

// Snapshot builds a snapshot with the default mesh from YAML files.
func Snapshot(t testing.TB, paths ...string) *model.Snapshot {
	t.Helper()
	return NewSnapshot(nil, Files(t, paths...))
}

// Proxy returns a sidecar proxy at ip in namespace ns, as ParseNode would
// build it from "sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local". The pod
// name is "<app label>-0" (or "pod-0"). Callers may set more fields
// (Locality, Network, Metadata) before computing a scope.
func Proxy(ip, ns string, labels map[string]string) *model.Proxy {
	pod := "pod-0"
	if app := labels["app"]; app != "" {
		pod = app + "-0"
	}
	if labels == nil {
		labels = map[string]string{}
	}
	p := &model.Proxy{
		Type:      model.SidecarProxy,
		Name:      pod + "." + ns,
		Namespace: ns,
		DNSDomain: ns + ".svc." + model.DefaultDomainSuffix,
		Labels:    labels,
		Metadata:  map[string]string{model.MetaNamespace: ns},
	}
	if ip != "" {
		p.IPAddresses = []string{ip}
	}
	p.ID = string(p.Type) + "~" + ip + "~" + p.Name + "~" + p.DNSDomain
	return p
}

// Fixture returns the path of a shared fixture in gentest/testdata.
func Fixture(name string) string {
	return filepath.Join(packageDir(), "testdata", name)
}

// Bookinfo returns the path of the Bookinfo ServiceEntry/WorkloadEntry fixture.
func Bookinfo() string { return Fixture("bookinfo.yaml") }

// Sample returns the path of a file among the Istio samples kept in
// shared/data/istio-samples beside the repository (for example
// "bookinfo/networking/destination-rule-all.yaml"). It fails the test when
// the file is absent.
func Sample(t testing.TB, name string) string {
	t.Helper()
	return samples.Path(t, name)
}

func packageDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}
