package serviceentry

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func seConfig(ns, name string, se *networking.ServiceEntry) config.Config {
	return config.Config{
		Meta: config.Meta{Kind: schema.ServiceEntry, Namespace: ns, Name: name, CreationTimestamp: t0},
		Spec: se,
	}
}

func weConfig(ns, name string, labels map[string]string, we *networking.WorkloadEntry) config.Config {
	return config.Config{
		Meta: config.Meta{Kind: schema.WorkloadEntry, Namespace: ns, Name: name, Labels: labels},
		Spec: we,
	}
}

func TestConvertServices(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Config
		want []*model.Service
	}{
		{
			name: "hosts by ports, protocol from field only",
			cfg: func() config.Config {
				c := seConfig("ns1", "ext", &networking.ServiceEntry{
					Hosts:      []string{"a.example.com", "b.example.com", "a.example.com"},
					Addresses:  []string{"10.0.0.1", "10.1.0.0/16", "10.2.0.1/32", "bogus", "2001:db8::1/128"},
					Ports:      []*networking.ServicePort{{Number: 443, Name: "https", Protocol: "TLS"}, {Number: 80, Name: "http-web", TargetPort: 8080}},
					Resolution: networking.ServiceEntry_DNS,
					ExportTo:   []string{".", "other", "."},
				})
				c.Labels = map[string]string{"team": "x"}
				return c
			}(),
			want: func() []*model.Service {
				mk := func(h string) *model.Service {
					return &model.Service{
						Hostname:  h,
						Namespace: "ns1",
						Addresses: []string{"10.0.0.1", "10.1.0.0/16", "10.2.0.1", "2001:db8::1"},
						Ports: []model.Port{
							{Name: "http-web", Number: 80, Protocol: model.ProtocolUnsupported, TargetPort: 8080},
							{Name: "https", Number: 443, Protocol: model.ProtocolTLS},
						},
						Resolution:        model.DNSLB,
						MeshExternal:      true,
						ExportTo:          []string{"ns1", "other"},
						Labels:            map[string]string{"team": "x"},
						Source:            config.Key{Kind: schema.ServiceEntry, Namespace: "ns1", Name: "ext"},
						CreationTimestamp: t0,
					}
				}
				return []*model.Service{mk("a.example.com"), mk("b.example.com")}
			}(),
		},
		{
			name: "mesh internal static with selector and SANs",
			cfg: seConfig("ns2", "int", &networking.ServiceEntry{
				Hosts:            []string{"db.internal"},
				Ports:            []*networking.ServicePort{{Number: 5432, Name: "tcp", Protocol: "tcp"}},
				Location:         networking.ServiceEntry_MESH_INTERNAL,
				Resolution:       networking.ServiceEntry_STATIC,
				WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "db"}},
				SubjectAltNames:  []string{"spiffe://cluster.local/ns/ns2/sa/db"},
				ExportTo:         []string{"*"},
			}),
			want: []*model.Service{{
				Hostname:          "db.internal",
				Namespace:         "ns2",
				Ports:             []model.Port{{Name: "tcp", Number: 5432, Protocol: model.ProtocolTCP}},
				Resolution:        model.ClientSideLB,
				ExportTo:          []string{"*"},
				Selector:          map[string]string{"app": "db"},
				ServiceAccounts:   []string{"spiffe://cluster.local/ns/ns2/sa/db"},
				Source:            config.Key{Kind: schema.ServiceEntry, Namespace: "ns2", Name: "int"},
				CreationTimestamp: t0,
			}},
		},
		{
			name: "resolution NONE and DNS_ROUND_ROBIN, empty selector kept",
			cfg: seConfig("ns3", "none", &networking.ServiceEntry{
				Hosts:            []string{"*.wild.com"},
				Resolution:       networking.ServiceEntry_NONE,
				WorkloadSelector: &networking.WorkloadSelector{},
				ExportTo:         []string{"~"},
			}),
			want: []*model.Service{{
				Hostname:          "*.wild.com",
				Namespace:         "ns3",
				Resolution:        model.Passthrough,
				MeshExternal:      true,
				ExportTo:          []string{"~"},
				Selector:          map[string]string{},
				Source:            config.Key{Kind: schema.ServiceEntry, Namespace: "ns3", Name: "none"},
				CreationTimestamp: t0,
			}},
		},
		{
			name: "not a service entry",
			cfg:  config.Config{Spec: &networking.WorkloadEntry{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ConvertServices(tc.cfg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ConvertServices (-want +got):\n%s", diff)
			}
		})
	}
	rr := ConvertServices(seConfig("n", "rr", &networking.ServiceEntry{Hosts: []string{"x"}, Resolution: networking.ServiceEntry_DNS_ROUND_ROBIN}))
	if rr[0].Resolution != model.DNSRoundRobinLB {
		t.Errorf("DNS_ROUND_ROBIN -> %v", rr[0].Resolution)
	}
}

func TestConvertServicesDoesNotAlias(t *testing.T) {
	cfg := seConfig("n", "x", &networking.ServiceEntry{
		Hosts: []string{"a", "b"},
		Ports: []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
	})
	cfg.Labels = map[string]string{"k": "v"}
	svcs := ConvertServices(cfg)
	svcs[0].Ports[0].Number = 1
	svcs[0].Labels["k"] = "changed"
	if svcs[1].Ports[0].Number != 80 || svcs[1].Labels["k"] != "v" || cfg.Labels["k"] != "v" {
		t.Fatal("services share slices or maps with each other or with the config")
	}
}

func TestConvertEndpoints(t *testing.T) {
	tests := []struct {
		name string
		se   *networking.ServiceEntry
		want []*model.Endpoint
	}{
		{
			name: "inline endpoints, tls mode from label or service account",
			se: &networking.ServiceEntry{
				Hosts:      []string{"svc.example.com"},
				Ports:      []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
				Resolution: networking.ServiceEntry_STATIC,
				Endpoints: []*networking.WorkloadEntry{
					{Address: "1.1.1.1", Ports: map[string]uint32{"http": 8080}, Labels: map[string]string{"version": "v1"}, Network: "n1", Locality: "r/z", Weight: 3},
					{Address: "2.2.2.2", ServiceAccount: "sa"},
					{Address: "3.3.3.3", ServiceAccount: "sa", Labels: map[string]string{"security.istio.io/tlsMode": "disabled", "istio-locality": "r1.z1"}},
					{Address: "4.4.4.4", Labels: map[string]string{"security.istio.io/tlsMode": "istio"}},
				},
			},
			want: []*model.Endpoint{
				{Address: "1.1.1.1", Ports: map[string]uint32{"http": 8080}, Labels: map[string]string{"version": "v1"}, Network: "n1", Locality: "r/z", Weight: 3, Namespace: "ns", TLSMode: "disabled"},
				{Address: "2.2.2.2", ServiceAccount: "sa", Namespace: "ns", TLSMode: "istio"},
				{Address: "3.3.3.3", ServiceAccount: "sa", Labels: map[string]string{"security.istio.io/tlsMode": "disabled", "istio-locality": "r1.z1"}, Locality: "r1/z1", Namespace: "ns", TLSMode: "disabled"},
				{Address: "4.4.4.4", Labels: map[string]string{"security.istio.io/tlsMode": "istio"}, Namespace: "ns", TLSMode: "istio"},
			},
		},
		{
			name: "DNS without endpoints resolves the host",
			se: &networking.ServiceEntry{
				Hosts:      []string{"svc.example.com"},
				Ports:      []*networking.ServicePort{{Number: 443, Name: "tls", Protocol: "TLS"}},
				Resolution: networking.ServiceEntry_DNS,
			},
			want: []*model.Endpoint{{Address: "svc.example.com", Namespace: "ns", TLSMode: "disabled"}},
		},
		{
			name: "DNS with selector has no host endpoint",
			se: &networking.ServiceEntry{
				Hosts:            []string{"svc.example.com"},
				Resolution:       networking.ServiceEntry_DNS,
				WorkloadSelector: &networking.WorkloadSelector{Labels: map[string]string{"app": "x"}},
			},
		},
		{
			name: "STATIC without endpoints has none",
			se:   &networking.ServiceEntry{Hosts: []string{"svc.example.com"}, Resolution: networking.ServiceEntry_STATIC},
		},
		{
			name: "NONE has none",
			se:   &networking.ServiceEntry{Hosts: []string{"svc.example.com"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := seConfig("ns", "se", tc.se)
			svcs := ConvertServices(cfg)
			got := ConvertEndpoints(cfg, svcs[0])
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ConvertEndpoints (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConvertWorkloadEntry(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Config
		want *model.Endpoint
	}{
		{
			name: "metadata labels win over spec labels",
			cfg: weConfig("ns", "vm-1", map[string]string{"app": "meta", "extra": "m"}, &networking.WorkloadEntry{
				Address:        "10.0.0.5",
				Ports:          map[string]uint32{"http": 9080},
				Labels:         map[string]string{"app": "spec", "version": "v1"},
				Network:        "net1",
				Locality:       "us/east/a",
				Weight:         7,
				ServiceAccount: "reviews",
			}),
			want: &model.Endpoint{
				Address:        "10.0.0.5",
				Ports:          map[string]uint32{"http": 9080},
				Labels:         map[string]string{"app": "meta", "extra": "m", "version": "v1"},
				Network:        "net1",
				Locality:       "us/east/a",
				Weight:         7,
				ServiceAccount: "reviews",
				Namespace:      "ns",
				WorkloadName:   "vm-1",
				TLSMode:        "istio",
			},
		},
		{
			name: "no service account: tls disabled; workload name from label",
			cfg: weConfig("ns", "vm-2", nil, &networking.WorkloadEntry{
				Address: "10.0.0.6",
				Labels:  map[string]string{"service.istio.io/workload-name": "ratings-vm"},
			}),
			want: &model.Endpoint{
				Address:      "10.0.0.6",
				Labels:       map[string]string{"service.istio.io/workload-name": "ratings-vm"},
				Namespace:    "ns",
				WorkloadName: "ratings-vm",
				TLSMode:      "disabled",
			},
		},
		{
			name: "workload name from auto-registration annotation",
			cfg: func() config.Config {
				c := weConfig("ns", "grp-10.0.0.7", nil, &networking.WorkloadEntry{Address: "10.0.0.7"})
				c.Annotations = map[string]string{"istio.io/autoRegistrationGroup": "grp"}
				return c
			}(),
			want: &model.Endpoint{Address: "10.0.0.7", Namespace: "ns", WorkloadName: "grp", TLSMode: "disabled"},
		},
		{
			name: "not a workload entry",
			cfg:  config.Config{Spec: &networking.ServiceEntry{}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ConvertWorkloadEntry(tc.cfg)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ConvertWorkloadEntry (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyGroup(t *testing.T) {
	wg := &networking.WorkloadGroup{
		Metadata: &networking.WorkloadGroup_ObjectMeta{
			Labels:      map[string]string{"app": "ratings", "tier": "group"},
			Annotations: map[string]string{"note": "g"},
		},
		Template: &networking.WorkloadEntry{
			Address:        "9.9.9.9", // ignored: auto-registration uses the proxy's IP
			Labels:         map[string]string{"tier": "template", "class": "vm"},
			ServiceAccount: "ratings",
			Network:        "vm-net",
			Ports:          map[string]uint32{"http": 9080},
			Weight:         2,
		},
	}
	we := weConfig("ns", "ratings-1", map[string]string{"version": "v2"}, &networking.WorkloadEntry{
		Address: "10.0.0.8",
		Labels:  map[string]string{"tier": "entry"},
		Network: "own-net",
	})
	we.Annotations = map[string]string{"istio.io/autoRegistrationGroup": "ratings"}

	got := ConvertWorkloadEntry(applyGroup(we, wg))
	want := &model.Endpoint{
		Address:        "10.0.0.8",
		Ports:          map[string]uint32{"http": 9080},
		Labels:         map[string]string{"app": "ratings", "class": "vm", "tier": "entry", "version": "v2"},
		Network:        "own-net",
		Weight:         2,
		ServiceAccount: "ratings",
		Namespace:      "ns",
		WorkloadName:   "ratings",
		TLSMode:        "istio",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applyGroup (-want +got):\n%s", diff)
	}
	if we.Spec.(*networking.WorkloadEntry).GetServiceAccount() != "" {
		t.Error("applyGroup mutated its input")
	}
}
