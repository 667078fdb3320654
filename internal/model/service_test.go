package model

import (
	"slices"
	"testing"
)

func TestEndpointPortFor(t *testing.T) {
	http := Port{Name: "http", Number: 80, Protocol: ProtocolHTTP}
	httpTarget := Port{Name: "http", Number: 80, Protocol: ProtocolHTTP, TargetPort: 8080}
	for _, tc := range []struct {
		name  string
		ports map[string]uint32
		port  Port
		want  uint32
	}{
		{"no mapping: service port", nil, http, 80},
		{"no mapping: target port", nil, httpTarget, 8080},
		{"named endpoint port wins over target port", map[string]uint32{"http": 9090}, httpTarget, 9090},
		{"named endpoint port", map[string]uint32{"http": 9090}, http, 9090},
		{"zero mapping is ignored", map[string]uint32{"http": 0}, httpTarget, 8080},
		{"other port names are ignored", map[string]uint32{"grpc": 9090}, http, 80},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Endpoint{Address: "10.0.0.1", Ports: tc.ports}
			if got := e.PortFor(tc.port); got != tc.want {
				t.Errorf("PortFor = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestEndpointLBWeight(t *testing.T) {
	for _, tc := range []struct{ weight, want uint32 }{{0, 1}, {1, 1}, {7, 7}} {
		if got := (&Endpoint{Weight: tc.weight}).LBWeight(); got != tc.want {
			t.Errorf("LBWeight(weight %d) = %d, want %d", tc.weight, got, tc.want)
		}
	}
}

func TestServicePorts(t *testing.T) {
	svc := &Service{Hostname: "reviews.bookinfo.svc.cluster.local", Namespace: "bookinfo", Ports: []Port{
		{Name: "http", Number: 9080, Protocol: ProtocolHTTP},
		{Name: "grpc", Number: 9090, Protocol: ProtocolGRPC},
	}}
	if k := svc.Key(); k != (ServiceKey{Hostname: "reviews.bookinfo.svc.cluster.local", Namespace: "bookinfo"}) {
		t.Errorf("Key = %v", k)
	}
	if s := svc.Key().String(); s != "reviews.bookinfo.svc.cluster.local (bookinfo)" {
		t.Errorf("Key().String() = %q", s)
	}
	for _, tc := range []struct {
		name   string
		lookup func() (Port, bool)
		want   string // port name; "" for not found
	}{
		{"by number", func() (Port, bool) { return svc.Port(9090) }, "grpc"},
		{"by unknown number", func() (Port, bool) { return svc.Port(1) }, ""},
		{"by name", func() (Port, bool) { return svc.PortByName("http") }, "http"},
		{"by unknown name", func() (Port, bool) { return svc.PortByName("tcp") }, ""},
	} {
		p, ok := tc.lookup()
		if ok != (tc.want != "") || p.Name != tc.want {
			t.Errorf("%s: got %+v, %v; want %q", tc.name, p, ok, tc.want)
		}
	}
}

func TestResolutionString(t *testing.T) {
	for r, want := range map[Resolution]string{
		ClientSideLB: "STATIC", DNSLB: "DNS", DNSRoundRobinLB: "DNS_ROUND_ROBIN", Passthrough: "NONE", Resolution(42): "unknown",
	} {
		if got := r.String(); got != want {
			t.Errorf("Resolution(%d) = %q, want %q", int(r), got, want)
		}
	}
}

func TestLabelsMatch(t *testing.T) {
	labels := map[string]string{"app": "reviews", "version": "v1"}
	for _, tc := range []struct {
		name     string
		selector map[string]string
		labels   map[string]string
		want     bool
	}{
		{"nil selector matches", nil, labels, true},
		{"empty selector matches no labels", map[string]string{}, nil, true},
		{"subset", map[string]string{"app": "reviews"}, labels, true},
		{"equal", map[string]string{"app": "reviews", "version": "v1"}, labels, true},
		{"value differs", map[string]string{"version": "v2"}, labels, false},
		{"key missing", map[string]string{"tier": "web"}, labels, false},
		{"empty value must be present", map[string]string{"tier": ""}, labels, false},
		{"selector on nil labels", map[string]string{"app": "reviews"}, nil, false},
	} {
		if got := LabelsMatch(tc.selector, tc.labels); got != tc.want {
			t.Errorf("%s: LabelsMatch = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSortEndpointsAndServices(t *testing.T) {
	eps := []*Endpoint{
		{Address: "10.0.0.2", WorkloadName: "a"},
		{Address: "10.0.0.10", WorkloadName: "a"},
		{Address: "10.0.0.1", WorkloadName: "b"},
		{Address: "10.0.0.1", WorkloadName: "a"},
	}
	SortEndpoints(eps)
	var gotEps []string
	for _, e := range eps {
		gotEps = append(gotEps, e.Key())
	}
	wantEps := []string{"10.0.0.1/a", "10.0.0.1/b", "10.0.0.10/a", "10.0.0.2/a"} // lexical
	if !slices.Equal(gotEps, wantEps) {
		t.Errorf("SortEndpoints = %q, want %q", gotEps, wantEps)
	}

	svcs := []*Service{service("b.example.com", "z"), service("a.example.com", "z"), service("b.example.com", "a")}
	SortServices(svcs)
	want := []string{"a.example.com (z)", "b.example.com (a)", "b.example.com (z)"}
	if got := serviceKeys(svcs); !slices.Equal(got, want) {
		t.Errorf("SortServices = %q, want %q", got, want)
	}
}
