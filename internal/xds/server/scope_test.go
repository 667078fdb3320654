package server

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

func cfg(kind config.GroupKind, ns, name string, spec proto.Message) config.Config {
	return config.Config{Meta: config.Meta{Kind: kind, Namespace: ns, Name: name, CreationTimestamp: time.Unix(1, 0)}, Spec: spec}
}

func TestAffects(t *testing.T) {
	svc := func(host, ns string, exportTo ...string) *model.Service {
		return &model.Service{Hostname: host, Namespace: ns, ExportTo: exportTo}
	}
	a := svc("a.ns-a.svc.cluster.local", "ns-a", "ns-a")
	b := svc("b.ns-b.svc.cluster.local", "ns-b", "*")
	c := svc("c.ns-c.svc.cluster.local", "ns-c", "ns-c")
	d := svc("d.ns-d.svc.cluster.local", "ns-d", "*") // deleted in the new snapshot
	served := svc("s.ns-c.svc.cluster.local", "ns-c", "ns-c")

	configs := []config.Config{
		cfg(schema.VirtualService, "ns-b", "vs-b", &networking.VirtualService{Hosts: []string{"b.ns-b.svc.cluster.local"}}),
		cfg(schema.VirtualService, "ns-c", "vs-c", &networking.VirtualService{Hosts: []string{"c.ns-c.svc.cluster.local"}, ExportTo: []string{"."}}),
		cfg(schema.VirtualService, "ns-c", "vs-gw", &networking.VirtualService{Hosts: []string{"b.ns-b.svc.cluster.local"}, Gateways: []string{"ns-c/gw"}}),
		cfg(schema.VirtualService, "ns-c", "delegate", &networking.VirtualService{}),
		cfg(schema.DestinationRule, "ns-b", "dr-b", &networking.DestinationRule{Host: "b.ns-b.svc.cluster.local"}),
		cfg(schema.DestinationRule, "ns-c", "dr-c", &networking.DestinationRule{Host: "c", ExportTo: []string{"."}}),
		cfg(schema.DestinationRule, "ns-c", "dr-private", &networking.DestinationRule{Host: "*.local", ExportTo: []string{"."}}),
		cfg(schema.DestinationRule, "ns-b", "dr-wild", &networking.DestinationRule{Host: "*.local"}),
		cfg(schema.DestinationRule, "ns-b", "dr-nohost", &networking.DestinationRule{Host: "nothing.example.com"}),
	}
	old := model.NewSnapshot(model.SnapshotInput{
		Version: "old", Configs: configs, Services: []*model.Service{a, b, c, d, served},
		Endpoints: map[model.ServiceKey][]*model.Endpoint{served.Key(): {{Address: "10.0.0.1"}}},
	})
	cur := model.NewSnapshot(model.SnapshotInput{
		Version: "new", Configs: configs, Services: []*model.Service{a, b, c, served},
		Endpoints: map[model.ServiceKey][]*model.Endpoint{served.Key(): {{Address: "10.0.0.1"}}},
	})
	sidecar, err := model.ParseNode(node(sidecarID("10.0.0.1", "p", "ns-a")))
	if err != nil {
		t.Fatal(err)
	}
	gateway, err := model.ParseNode(node("router~10.0.0.2~gw.ns-a~ns-a.svc.cluster.local"))
	if err != nil {
		t.Fatal(err)
	}
	svcs := func(ss ...*model.Service) PushRequest {
		m := map[model.ServiceKey]struct{}{}
		for _, s := range ss {
			m[s.Key()] = struct{}{}
		}
		return PushRequest{ServicesUpdated: m}
	}
	cfgs := func(kind config.GroupKind, ns, name string) PushRequest {
		return PushRequest{Full: true, ConfigsUpdated: map[config.Key]struct{}{{Kind: kind, Namespace: ns, Name: name}: {}}}
	}
	cases := []struct {
		name  string
		proxy *model.Proxy
		old   *model.Snapshot
		req   PushRequest
		want  bool
	}{
		{"unknown change set", sidecar, old, PushRequest{Full: true}, true},
		{"no previous snapshot", sidecar, nil, svcs(c), true},
		{"gateways are not scoped", gateway, old, svcs(c), true},
		{"own namespace service", sidecar, old, svcs(a), true},
		{"exported service", sidecar, old, svcs(b), true},
		{"service private to another namespace", sidecar, old, svcs(c), false},
		{"deleted service the proxy saw", sidecar, old, svcs(d), true},
		{"service that never existed", sidecar, old, svcs(svc("x.example.com", "ns-x")), false},
		{"service with an instance on the proxy", sidecar, old, svcs(served), true},
		{"visible VirtualService", sidecar, old, cfgs(schema.VirtualService, "ns-b", "vs-b"), true},
		{"VirtualService private to another namespace", sidecar, old, cfgs(schema.VirtualService, "ns-c", "vs-c"), false},
		{"gateway-only VirtualService", sidecar, old, cfgs(schema.VirtualService, "ns-c", "vs-gw"), false},
		{"delegate VirtualService", sidecar, old, cfgs(schema.VirtualService, "ns-c", "delegate"), true},
		{"absent VirtualService", sidecar, old, cfgs(schema.VirtualService, "ns-c", "gone"), false},
		{"DestinationRule for a visible host", sidecar, old, cfgs(schema.DestinationRule, "ns-b", "dr-b"), true},
		{"DestinationRule private to another namespace", sidecar, old, cfgs(schema.DestinationRule, "ns-c", "dr-c"), false},
		{"private wildcard DestinationRule", sidecar, old, cfgs(schema.DestinationRule, "ns-c", "dr-private"), false},
		{"wildcard DestinationRule", sidecar, old, cfgs(schema.DestinationRule, "ns-b", "dr-wild"), true},
		{"DestinationRule for no service", sidecar, old, cfgs(schema.DestinationRule, "ns-b", "dr-nohost"), false},
		{"Sidecar in another namespace", sidecar, old, cfgs(schema.Sidecar, "ns-z", "default"), false},
		{"Sidecar in the proxy's namespace", sidecar, old, cfgs(schema.Sidecar, "ns-a", "default"), true},
		{"Sidecar in the root namespace", sidecar, old, cfgs(schema.Sidecar, "istio-system", "default"), true},
		{"other kinds", sidecar, old, cfgs(schema.Gateway, "ns-z", "gw"), true},
		{"one affecting change among many", sidecar, old, PushRequest{
			ServicesUpdated: map[model.ServiceKey]struct{}{c.Key(): {}},
			ConfigsUpdated:  map[config.Key]struct{}{{Kind: schema.VirtualService, Namespace: "ns-b", Name: "vs-b"}: {}},
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEvent(cur, tc.req, time.Now())
			if got := affects(tc.proxy, tc.old, ev); got != tc.want {
				t.Fatalf("affects = %v, want %v", got, tc.want)
			}
		})
	}
}
