package model

import (
	"slices"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

func TestSnapshotDefaults(t *testing.T) {
	s := NewSnapshot(SnapshotInput{Version: "v1"})
	if s.Version != "v1" || s.DomainSuffix != DefaultDomainSuffix {
		t.Errorf("Version %q, DomainSuffix %q", s.Version, s.DomainSuffix)
	}
	if got := s.Mesh.GetRootNamespace(); got != "istio-system" {
		t.Errorf("default mesh root namespace = %q", got)
	}
	if got := s.Mesh.GetOutboundTrafficPolicy().GetMode(); got != meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY {
		t.Errorf("default outbound policy = %v", got)
	}
	if got := s.ResolveHost("reviews", "bookinfo"); got != "reviews.bookinfo.svc.cluster.local" {
		t.Errorf("ResolveHost = %q", got)
	}
	custom := NewSnapshot(SnapshotInput{DomainSuffix: "corp.example"})
	if got := custom.ResolveHost("reviews", "bookinfo"); got != "reviews.bookinfo.svc.corp.example" {
		t.Errorf("ResolveHost with suffix = %q", got)
	}
	if len(s.Services()) != 0 || len(s.Configs(schema.VirtualService)) != 0 {
		t.Error("empty snapshot has content")
	}
}

func TestSnapshotConfigOrder(t *testing.T) {
	in := []config.Config{
		virtualService("b", "late", 30, []string{"x"}),
		virtualService("b", "same-b", 10, []string{"x"}),
		virtualService("a", "same-z", 10, []string{"x"}),
		virtualService("a", "same-a", 10, []string{"x"}),
		virtualService("z", "oldest", 1, []string{"x"}),
		newDR("a", "dr", 5, "x"),
	}
	orig := slices.Clone(in)
	s := NewSnapshot(SnapshotInput{Configs: in})

	// Creation time first, then namespace, then name.
	want := []string{"z/oldest", "a/same-a", "a/same-z", "b/same-b", "b/late"}
	if got := nsNames(s.Configs(schema.VirtualService)); !slices.Equal(got, want) {
		t.Errorf("VirtualServices = %q, want %q", got, want)
	}
	if got := nsNames(s.Configs(schema.DestinationRule)); !slices.Equal(got, []string{"a/dr"}) {
		t.Errorf("DestinationRules = %q", got)
	}
	if got := s.Configs(schema.Gateway); got != nil {
		t.Errorf("Gateways = %v, want none", got)
	}
	for i := range in {
		if nsName(in[i]) != nsName(orig[i]) {
			t.Fatalf("NewSnapshot reordered its input: %q", nsNames(in))
		}
	}

	key := config.Key{Kind: schema.VirtualService, Namespace: "a", Name: "same-z"}
	if c, ok := s.Config(key); !ok || nsName(c) != "a/same-z" {
		t.Errorf("Config(%v) = %v, %v", key, nsName(c), ok)
	}
	key.Kind = schema.DestinationRule
	if _, ok := s.Config(key); ok {
		t.Errorf("Config(%v) found a config of the wrong kind", key)
	}
}

func TestSortConfigsIsStableForEqualKeys(t *testing.T) {
	a := virtualService("ns", "same", 1, []string{"first"})
	b := virtualService("ns", "same", 1, []string{"second"})
	list := []config.Config{a, b}
	SortConfigs(list)
	if h := list[0].Spec.(interface{ GetHosts() []string }).GetHosts()[0]; h != "first" {
		t.Errorf("equal keys reordered: first is %q", h)
	}
}

func TestSnapshotServicesAndEndpoints(t *testing.T) {
	reviews := service("reviews.bookinfo.svc.cluster.local", "bookinfo")
	ratings := service("ratings.bookinfo.svc.cluster.local", "bookinfo")
	apiA := service("api.example.com", "team-a")
	apiB := service("api.example.com", "team-b")
	ep := func(addr, workload string) *Endpoint { return &Endpoint{Address: addr, WorkloadName: workload} }
	in := SnapshotInput{
		Services: []*Service{reviews, apiB, ratings, apiA},
		Endpoints: map[ServiceKey][]*Endpoint{
			reviews.Key():                        {ep("10.0.0.3", "reviews-v2"), ep("10.0.0.1", "reviews-v1")},
			ratings.Key():                        {ep("10.0.0.1", "ratings-v1")}, // same address, another service
			apiA.Key():                           {ep("api.example.com", "")},
			{Hostname: "orphan", Namespace: "x"}: {ep("10.9.9.9", "orphan")},
		},
	}
	inputOrder := serviceKeys(in.Services)
	s := NewSnapshot(in)

	wantSvcs := []string{
		"api.example.com (team-a)", "api.example.com (team-b)",
		"ratings.bookinfo.svc.cluster.local (bookinfo)", "reviews.bookinfo.svc.cluster.local (bookinfo)",
	}
	if got := serviceKeys(s.Services()); !slices.Equal(got, wantSvcs) {
		t.Errorf("Services = %q, want %q", got, wantSvcs)
	}
	if got := serviceKeys(in.Services); !slices.Equal(got, inputOrder) {
		t.Errorf("NewSnapshot sorted its input: %q", got)
	}
	if got := serviceKeys(s.ServicesByHost("api.example.com")); !slices.Equal(got, wantSvcs[:2]) {
		t.Errorf("ServicesByHost = %q", got)
	}
	if got := s.ServicesByHost("unknown.example.com"); got != nil {
		t.Errorf("ServicesByHost(unknown) = %v", got)
	}

	endpointKeys := func(eps []*Endpoint) []string {
		out := []string{}
		for _, e := range eps {
			out = append(out, e.Key())
		}
		return out
	}
	for _, tc := range []struct {
		name string
		key  ServiceKey
		want []string
	}{
		{"sorted by address", reviews.Key(), []string{"10.0.0.1/reviews-v1", "10.0.0.3/reviews-v2"}},
		{"one endpoint", ratings.Key(), []string{"10.0.0.1/ratings-v1"}},
		{"DNS endpoint", apiA.Key(), []string{"api.example.com/"}},
		{"service without endpoints", apiB.Key(), []string{}},
		{"endpoints of an unknown service are dropped", ServiceKey{Hostname: "orphan", Namespace: "x"}, []string{}},
	} {
		if got := endpointKeys(s.Endpoints(tc.key)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Endpoints = %q, want %q", tc.name, got, tc.want)
		}
	}
	// The input slice keeps its order.
	if got := endpointKeys(in.Endpoints[reviews.Key()]); got[0] != "10.0.0.3/reviews-v2" {
		t.Errorf("NewSnapshot sorted the input endpoints: %q", got)
	}

	instanceKeys := func(insts []ServiceInstance) []string {
		out := []string{}
		for _, in := range insts {
			out = append(out, in.Service.Hostname+"@"+in.Endpoint.Key())
		}
		return out
	}
	for _, tc := range []struct {
		name string
		addr string
		want []string
	}{
		{"two services at one address", "10.0.0.1", []string{
			"ratings.bookinfo.svc.cluster.local@10.0.0.1/ratings-v1",
			"reviews.bookinfo.svc.cluster.local@10.0.0.1/reviews-v1",
		}},
		{"one service", "10.0.0.3", []string{"reviews.bookinfo.svc.cluster.local@10.0.0.3/reviews-v2"}},
		{"nothing there", "10.0.0.2", []string{}},
		{"orphan endpoints are not indexed", "10.9.9.9", []string{}},
	} {
		if got := instanceKeys(s.InstancesAt(tc.addr)); !slices.Equal(got, tc.want) {
			t.Errorf("InstancesAt %s: %q, want %q", tc.name, got, tc.want)
		}
	}

	for _, tc := range []struct {
		name string
		ips  []string
		want []string
	}{
		{"no addresses", nil, []string{}},
		{"unknown address", []string{"192.168.0.1"}, []string{}},
		{"one address", []string{"10.0.0.3"}, []string{"reviews.bookinfo.svc.cluster.local@10.0.0.3/reviews-v2"}},
		{"several addresses", []string{"10.0.0.1", "10.0.0.3"}, []string{
			"ratings.bookinfo.svc.cluster.local@10.0.0.1/ratings-v1",
			"reviews.bookinfo.svc.cluster.local@10.0.0.1/reviews-v1",
			"reviews.bookinfo.svc.cluster.local@10.0.0.3/reviews-v2",
		}},
	} {
		p := sidecarProxy("bookinfo", nil)
		p.IPAddresses = tc.ips
		if got := instanceKeys(s.ProxyInstances(p)); !slices.Equal(got, tc.want) {
			t.Errorf("ProxyInstances %s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestServiceVisibility(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exportTo []string
		defaults []string
		want     map[string]bool // proxy namespace → visible
	}{
		{"mesh default *", nil, []string{"*"}, map[string]bool{"svc-ns": true, "other": true}},
		{"mesh default .", nil, []string{"."}, map[string]bool{"svc-ns": true, "other": false}},
		{"explicit * beats mesh default .", []string{"*"}, []string{"."}, map[string]bool{"svc-ns": true, "other": true}},
		{"explicit .", []string{"."}, []string{"*"}, map[string]bool{"svc-ns": true, "other": false}},
		{"explicit ~", []string{"~"}, []string{"*"}, map[string]bool{"svc-ns": false, "other": false}},
		{"named", []string{"other"}, []string{"*"}, map[string]bool{"svc-ns": false, "other": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(SnapshotInput{Mesh: meshWith(func(m *meshconfig.MeshConfig) { m.DefaultServiceExportTo = tc.defaults })})
			v := s.ServiceVisibility(service("h.example.com", "svc-ns", tc.exportTo...))
			for ns, want := range tc.want {
				if got := v.VisibleTo(ns); got != want {
					t.Errorf("VisibleTo(%q) = %v, want %v", ns, got, want)
				}
			}
		})
	}
}

func TestSidecarFor(t *testing.T) {
	const root = "istio-system"
	all := []config.Config{
		sidecar(root, "default", 0, nil, "*/*"),
		sidecar(root, "root-selector", 0, map[string]string{"app": "reviews"}, "*/*"),
		sidecar("bookinfo", "default", 5, nil, "./*"),
		sidecar("bookinfo", "reviews", 3, map[string]string{"app": "reviews"}, "./*"),
		sidecar("bookinfo", "reviews-v2", 1, map[string]string{"app": "reviews", "version": "v2"}, "./*"),
		sidecar("ratings-ns", "ratings", 1, map[string]string{"app": "ratings"}, "./*"),
		sidecar("twice", "b-newer", 2, nil, "./*"),
		sidecar("twice", "a-older", 1, nil, "./*"),
		sidecar("tie", "b", 1, map[string]string{"app": "x"}, "./*"),
		sidecar("tie", "a", 1, map[string]string{"app": "x"}, "./*"),
	}
	withoutRootDefault := slices.DeleteFunc(slices.Clone(all), func(c config.Config) bool { return nsName(c) == root+"/default" })
	gw := sidecarProxy("bookinfo", map[string]string{"app": "reviews"})
	gw.Type = Router

	for _, tc := range []struct {
		name    string
		configs []config.Config
		mesh    *meshconfig.MeshConfig
		proxy   *Proxy
		want    string // "" for none
	}{
		{"oldest matching selector in own namespace", all, nil,
			sidecarProxy("bookinfo", map[string]string{"app": "reviews", "version": "v2"}), "bookinfo/reviews-v2"},
		{"selector beats a newer or older namespace default", all, nil,
			sidecarProxy("bookinfo", map[string]string{"app": "reviews", "version": "v1"}), "bookinfo/reviews"},
		{"namespace default when no selector matches", all, nil,
			sidecarProxy("bookinfo", map[string]string{"app": "productpage"}), "bookinfo/default"},
		{"selector-only namespace", all, nil,
			sidecarProxy("ratings-ns", map[string]string{"app": "ratings"}), "ratings-ns/ratings"},
		{"root default when own selectors do not match", all, nil,
			sidecarProxy("ratings-ns", map[string]string{"app": "details"}), root + "/default"},
		{"selectors of other namespaces are ignored", all, nil,
			sidecarProxy("empty", map[string]string{"app": "reviews"}), root + "/default"},
		{"root selector applies in the root namespace itself", all, nil,
			sidecarProxy(root, map[string]string{"app": "reviews"}), root + "/root-selector"},
		{"oldest of two namespace defaults", all, nil, sidecarProxy("twice", nil), "twice/a-older"},
		{"same age: name order", all, nil, sidecarProxy("tie", map[string]string{"app": "x"}), "tie/a"},
		{"no root default: none", withoutRootDefault, nil, sidecarProxy("empty", nil), ""},
		{"custom root namespace", []config.Config{sidecar("mesh-root", "default", 0, nil, "*/*"), sidecar(root, "default", 0, nil)},
			meshWith(func(m *meshconfig.MeshConfig) { m.RootNamespace = "mesh-root" }), sidecarProxy("empty", nil), "mesh-root/default"},
		{"gateways ignore Sidecars", all, nil, gw, ""},
		{"no Sidecars", nil, nil, sidecarProxy("bookinfo", nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSnapshot(SnapshotInput{Mesh: tc.mesh, Configs: tc.configs})
			c, ok := s.SidecarFor(tc.proxy)
			got := ""
			if ok {
				got = nsName(c)
			}
			if got != tc.want {
				t.Errorf("SidecarFor = %q, want %q", got, tc.want)
			}
		})
	}
}
