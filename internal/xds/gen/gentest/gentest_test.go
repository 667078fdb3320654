package gentest

import (
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
)

func TestDecode(t *testing.T) {
	cfgs, err := Decode("inline", []byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: a
  labels: {team: x}
spec:
  host: a
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: 30ms, idleTimeout: 1h}
    outlierDetection: {interval: 1m30s, baseEjectionTime: 2.5s}
    loadBalancer:
      consistentHash: {maglev: {tableSize: 18446744073709551557}}
---
# comment only
---
apiVersion: networking.istio.io/v1alpha3
kind: Sidecar
metadata:
  name: b
  namespace: other
  creationTimestamp: "2020-01-01T00:00:00Z"
spec: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 2 {
		t.Fatalf("got %d configs, want 2", len(cfgs))
	}
	a, b := cfgs[0], cfgs[1]
	if a.Kind != schema.DestinationRule || a.Namespace != "default" || a.Labels["team"] != "x" || a.Version != "v1" {
		t.Errorf("first object meta = %+v", a.Meta)
	}
	tp := a.Spec.(*networking.DestinationRule).GetTrafficPolicy()
	got := []time.Duration{
		tp.GetConnectionPool().GetTcp().GetConnectTimeout().AsDuration(),
		tp.GetConnectionPool().GetTcp().GetIdleTimeout().AsDuration(),
		tp.GetOutlierDetection().GetInterval().AsDuration(),
		tp.GetOutlierDetection().GetBaseEjectionTime().AsDuration(),
	}
	want := []time.Duration{30 * time.Millisecond, time.Hour, 90 * time.Second, 2500 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("duration %d = %v, want %v", i, got[i], want[i])
		}
	}
	if n := tp.GetLoadBalancer().GetConsistentHash().GetMaglev().GetTableSize(); n != 18446744073709551557 {
		t.Errorf("tableSize = %d: 64-bit integers must survive decoding", n)
	}
	if b.Kind != schema.Sidecar || b.Namespace != "other" || b.CreationTimestamp.Year() != 2020 {
		t.Errorf("second object meta = %+v", b.Meta)
	}
	if a.CreationTimestamp.IsZero() {
		t.Error("objects without a creationTimestamp must be stamped")
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := map[string]string{
		"unknown kind":  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n",
		"unknown field": "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {hots: a}\n",
		"bad duration":  "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x}\nspec: {host: a, trafficPolicy: {connectionPool: {tcp: {connectTimeout: soon}}}}\n",
	}
	for name, src := range cases {
		if _, err := Decode(name, []byte(src)); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the source", name, err)
		}
	}
}

func TestBookinfoRegistry(t *testing.T) {
	snap := Snapshot(t, Bookinfo())
	if got := len(snap.Services()); got != 4 {
		t.Fatalf("got %d services, want 4", got)
	}
	reviews := snap.ServicesByHost("reviews.default.svc.cluster.local")
	if len(reviews) != 1 {
		t.Fatalf("reviews: %v", reviews)
	}
	svc := reviews[0]
	if svc.Resolution != model.ClientSideLB || svc.Ports[0].Protocol != model.ProtocolHTTP || svc.Ports[0].Number != 9080 {
		t.Errorf("reviews service = %+v", svc)
	}
	eps := snap.Endpoints(svc.Key())
	if len(eps) != 3 {
		t.Fatalf("reviews has %d endpoints, want 3", len(eps))
	}
	for i, v := range []string{"v1", "v2", "v3"} {
		ep := eps[i]
		if ep.Labels["version"] != v || ep.TLSMode != "istio" || ep.ServiceAccount != "bookinfo-reviews" || ep.WorkloadName != "reviews-"+v {
			t.Errorf("endpoint %d = %+v", i, ep)
		}
	}
	if in := snap.ProxyInstances(Proxy("10.0.0.1", "default", nil)); len(in) != 1 || in[0].Service.Hostname != "productpage.default.svc.cluster.local" {
		t.Errorf("productpage instances = %v", in)
	}
}

func TestRegistryDNSHosts(t *testing.T) {
	cfgs := YAML(t, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [a.example.com, b.example.com]
  ports: [{number: 443, name: https}]
  resolution: DNS
  location: MESH_EXTERNAL
`)
	snap := NewSnapshot(nil, cfgs)
	for _, h := range []string{"a.example.com", "b.example.com"} {
		svc := snap.ServicesByHost(h)[0]
		eps := snap.Endpoints(svc.Key())
		if !svc.MeshExternal || svc.Ports[0].Protocol != model.ProtocolHTTPS || len(eps) != 1 || eps[0].Address != h || eps[0].TLSMode != "disabled" {
			t.Errorf("%s: service %+v endpoints %v", h, svc, eps)
		}
	}
}

func TestProxy(t *testing.T) {
	p := Proxy("10.0.0.9", "ns1", map[string]string{"app": "web"})
	if p.ID != "sidecar~10.0.0.9~web-0.ns1~ns1.svc.cluster.local" || p.Namespace != "ns1" || p.Type != model.SidecarProxy {
		t.Errorf("proxy = %+v", p)
	}
	if q := Proxy("", "ns1", nil); q.Labels == nil || len(q.IPAddresses) != 0 {
		t.Errorf("proxy without IP = %+v", q)
	}
}

func TestRenderStable(t *testing.T) {
	m := &networking.DestinationRule{Host: "a", ExportTo: []string{"b", "a"}}
	first, err := Render(m, m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		again, _ := Render(m, m)
		if string(again) != string(first) {
			t.Fatal("Render is not stable")
		}
	}
	if !strings.HasPrefix(string(first), "[\n  {\n    \"export_to\"") {
		t.Errorf("unexpected rendering:\n%s", first)
	}
}

func TestProtoDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0s", time.Second: "1s", -1500 * time.Millisecond: "-1.5s", time.Nanosecond: "0.000000001s"} {
		if got := protoDuration(d); got != want {
			t.Errorf("protoDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
