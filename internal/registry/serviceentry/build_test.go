package serviceentry

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/trellismesh/trellis/internal/model"
)

func TestDiff(t *testing.T) {
	svc := func(h string, port uint32) *model.Service {
		return &model.Service{Hostname: h, Namespace: "ns", Ports: []model.Port{{Name: "http", Number: port}}}
	}
	ep := func(addr string, labels map[string]string) *model.Endpoint {
		return &model.Endpoint{Address: addr, Labels: labels}
	}
	k := func(h string) model.ServiceKey { return model.ServiceKey{Hostname: h, Namespace: "ns"} }
	old := &nsState{
		services: map[model.ServiceKey]*model.Service{
			k("a"): svc("a", 80), k("b"): svc("b", 80), k("c"): svc("c", 80), k("gone"): svc("gone", 80),
		},
		endpoints: map[model.ServiceKey][]*model.Endpoint{
			k("a"): {ep("1.1.1.1", nil)},
			k("b"): {ep("2.2.2.2", map[string]string{"v": "1"})},
			k("c"): {ep("3.3.3.3", nil)},
		},
	}
	cur := &nsState{
		services: map[model.ServiceKey]*model.Service{
			k("a"):   svc("a", 81), // shape changed (and endpoints: still a service change)
			k("b"):   svc("b", 80), // endpoint labels changed
			k("c"):   svc("c", 80), // unchanged (equal values, new pointers)
			k("new"): svc("new", 80),
		},
		endpoints: map[model.ServiceKey][]*model.Endpoint{
			k("a"): {ep("1.1.1.9", nil)},
			k("b"): {ep("2.2.2.2", map[string]string{"v": "2"})},
			k("c"): {ep("3.3.3.3", nil)},
		},
	}
	services, endpointsOnly := diff(old, cur)
	if want := []model.ServiceKey{k("a"), k("gone"), k("new")}; !cmp.Equal(services, want) {
		t.Errorf("services = %v, want %v", services, want)
	}
	if want := []model.ServiceKey{k("b")}; !cmp.Equal(endpointsOnly, want) {
		t.Errorf("endpointsOnly = %v, want %v", endpointsOnly, want)
	}

	reuse(old, cur)
	if cur.services[k("c")] != old.services[k("c")] || cur.endpoints[k("c")][0] != old.endpoints[k("c")][0] {
		t.Error("unchanged service or endpoints not reused")
	}
	if cur.services[k("a")] == old.services[k("a")] {
		t.Error("changed service reused")
	}
	if s, e := diff(nil, nil); s != nil || e != nil {
		t.Errorf("diff(nil, nil) = %v, %v", s, e)
	}
}
