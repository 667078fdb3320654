package endpoint_test

import (
	"bytes"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

func productpage() *model.Proxy {
	return gentest.Proxy("10.0.0.1", "default", map[string]string{"app": "productpage", "version": "v1"})
}

func outbound(port uint32, subset, host string) string {
	return model.ClusterName(model.Outbound, port, subset, host)
}

func msgs(clas []*endpointv3.ClusterLoadAssignment) []proto.Message {
	out := make([]proto.Message, len(clas))
	for i, c := range clas {
		out[i] = c
	}
	return out
}

const (
	reviews = "reviews.default.svc.cluster.local"
	ratings = "ratings.default.svc.cluster.local"
)

func locNames(svcs ...string) []string {
	var out []string
	for _, s := range svcs {
		out = append(out, outbound(8080, "", s+".default.svc.cluster.local"))
	}
	return out
}

// TestGolden renders the assignments answering one EDS request per case,
// validates each and compares them with testdata/<case>.golden.
func TestGolden(t *testing.T) {
	usEast := func() *model.Proxy {
		p := productpage()
		p.Locality = "us-east/zone1/sub1"
		return p
	}
	cases := []struct {
		name  string
		files func(t *testing.T) []string
		yaml  string
		proxy func() *model.Proxy
		names []string
	}{
		{
			name: "bookinfo",
			names: []string{
				outbound(9080, "", reviews), outbound(9080, "", ratings), outbound(9080, "", reviews), // duplicate
			},
		},
		{
			name: "bookinfo_subsets",
			files: func(t *testing.T) []string {
				return []string{gentest.Sample(t, "bookinfo/networking/destination-rule-all.yaml")}
			},
			names: []string{
				outbound(9080, "v1", reviews), outbound(9080, "v2", reviews), outbound(9080, "v3", reviews),
				outbound(9080, "v2-mysql", ratings), outbound(9080, "v9", reviews),
			},
		},
		{
			name: "unknown_names",
			names: []string{
				"BlackHoleCluster", "inbound|9080||", "outbound|9080||nope.default.svc.cluster.local",
				outbound(1234, "", reviews), "outbound|x||" + reviews, "garbage",
			},
		},
		{
			name: "tls_disabled_by_rule",
			yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    tls:
      mode: DISABLE
  subsets:
  - name: v1
    labels:
      version: v1
    trafficPolicy:
      tls:
        mode: ISTIO_MUTUAL
`,
			names: []string{outbound(9080, "", reviews), outbound(9080, "v1", reviews)},
		},
		{
			name: "peer_authentication",
			yaml: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: reviews-v2
spec:
  selector:
    matchLabels:
      app: reviews
      version: v2
  mtls:
    mode: DISABLE
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: reviews-v3
spec:
  selector:
    matchLabels:
      version: v3
  mtls:
    mode: STRICT
  portLevelMtls:
    9080:
      mode: DISABLE
`,
			names: []string{outbound(9080, "", reviews)},
		},
		{
			name:  "locality",
			files: func(*testing.T) []string { return []string{gentest.Fixture("locality.yaml")} },
			proxy: usEast,
			names: locNames("loc-default", "loc-failover", "loc-failover-no-outlier", "loc-distribute",
				"loc-failover-priority", "loc-failover-priority-override", "loc-disabled", "loc-dns"),
		},
		{
			name:  "locality_from_elsewhere",
			files: func(*testing.T) []string { return []string{gentest.Fixture("locality.yaml")} },
			proxy: func() *model.Proxy {
				p := gentest.Proxy("10.9.0.1", "default", map[string]string{"version": "v2"})
				p.Locality = "eu-west/zone1"
				return p
			},
			names: locNames("loc-failover", "loc-distribute", "loc-failover-priority"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := []string{gentest.Bookinfo()}
			if tc.files != nil {
				files = append(files, tc.files(t)...)
			}
			cfgs := gentest.Files(t, files...)
			if tc.yaml != "" {
				cfgs = append(cfgs, gentest.YAML(t, tc.yaml)...)
			}
			p := productpage()
			if tc.proxy != nil {
				p = tc.proxy()
			}
			clas := endpoint.Build(gentest.NewSnapshot(nil, cfgs).Scope(p), tc.names)
			gentest.Validate(t, msgs(clas)...)
			checkLocalityWeights(t, clas)
			gentest.Golden(t, tc.name, msgs(clas)...)
		})
	}
}

// checkLocalityWeights enforces what gRPC's xDS client requires: every
// locality carries a weight and a locality.
func checkLocalityWeights(t *testing.T, clas []*endpointv3.ClusterLoadAssignment) {
	t.Helper()
	for _, cla := range clas {
		for _, l := range cla.GetEndpoints() {
			if l.GetLoadBalancingWeight().GetValue() == 0 || l.GetLocality() == nil {
				t.Errorf("%s: locality %v has no weight or no locality", cla.GetClusterName(), l.GetLocality())
			}
		}
	}
}

func TestBuildSortedUniqueAndComplete(t *testing.T) {
	sc := gentest.Snapshot(t, gentest.Bookinfo()).Scope(productpage())
	names := []string{"b", "a", outbound(9080, "", reviews), "a"}
	clas := endpoint.Build(sc, names)
	var got []string
	for _, c := range clas {
		got = append(got, c.GetClusterName())
	}
	want := []string{"a", "b", outbound(9080, "", reviews)}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	build := func() []byte {
		cfgs := gentest.Files(t, gentest.Bookinfo(), gentest.Fixture("locality.yaml"))
		p := productpage()
		p.Locality = "us-east/zone1/sub1"
		names := locNames("loc-failover", "loc-distribute", "loc-failover-priority", "loc-failover-priority-override")
		var buf bytes.Buffer
		for _, cla := range endpoint.Build(gentest.NewSnapshot(nil, cfgs).Scope(p), names) {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cla)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
		}
		return buf.Bytes()
	}
	first := build()
	for i := 0; i < 5; i++ {
		if !bytes.Equal(first, build()) {
			t.Fatal("two builds differ")
		}
	}
}

// TestFailoverPriorities checks the priorities Istio assigns relative to a
// proxy in us-east/zone1/sub1 with failover us-east → eu-west.
func TestFailoverPriorities(t *testing.T) {
	cfgs := gentest.Files(t, gentest.Bookinfo(), gentest.Fixture("locality.yaml"))
	p := productpage()
	p.Locality = "us-east/zone1/sub1"
	clas := endpoint.Build(gentest.NewSnapshot(nil, cfgs).Scope(p), locNames("loc-failover"))
	want := map[string]uint32{
		"us-east/zone1/sub1": 0, // same subzone
		"us-east/zone1/sub2": 1, // same zone
		"us-east/zone2":      2, // same region
		"eu-west/zone1":      3, // failover target region
		"ap-south/zone1":     4, // other regions
		"us-west/zone1":      4,
	}
	for _, l := range clas[0].GetEndpoints() {
		loc := model.LocalityString(l.GetLocality().GetRegion(), l.GetLocality().GetZone(), l.GetLocality().GetSubZone())
		if got, ok := want[loc]; !ok || got != l.GetPriority() {
			t.Errorf("locality %s: priority %d, want %d", loc, l.GetPriority(), got)
		}
	}
}

func TestLocalityLBSetting(t *testing.T) {
	on := &networking.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(true)}
	off := &networking.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(false)}
	implicit := &networking.LocalityLoadBalancerSetting{}
	cases := []struct {
		name     string
		mesh, dr *networking.LocalityLoadBalancerSetting
		want     *networking.LocalityLoadBalancerSetting
	}{
		{"neither", nil, nil, nil},
		{"mesh only", on, nil, on},
		{"mesh implicit", implicit, nil, implicit},
		{"mesh disabled", off, nil, nil},
		{"rule overrides mesh", on, implicit, implicit},
		{"rule enables over disabled mesh", off, on, on},
		{"rule disables", on, off, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := endpoint.LocalityLBSetting(tc.mesh, tc.dr); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCanonicalService(t *testing.T) {
	cases := []struct {
		labels            map[string]string
		workload          string
		wantName, wantRev string
	}{
		{nil, "w", "w", "latest"},
		{map[string]string{"app": "a", "version": "v1"}, "w", "a", "v1"},
		{map[string]string{"app": "a", "app.kubernetes.io/name": "k", "app.kubernetes.io/version": "kv"}, "w", "k", "kv"},
		{map[string]string{"service.istio.io/canonical-name": "c", "service.istio.io/canonical-revision": "r", "app": "a"}, "w", "c", "r"},
	}
	for _, tc := range cases {
		n, r := endpoint.CanonicalService(tc.labels, tc.workload)
		if n != tc.wantName || r != tc.wantRev {
			t.Errorf("CanonicalService(%v, %q) = %q, %q; want %q, %q", tc.labels, tc.workload, n, r, tc.wantName, tc.wantRev)
		}
	}
}

// TestHealthStatus checks each endpoint's health reaches EDS as
// health_status: HEALTHY, UNHEALTHY, DRAINING.
func TestHealthStatus(t *testing.T) {
	svc := &model.Service{Hostname: "web.default.svc.cluster.local", Namespace: "default",
		Ports: []model.Port{{Name: "http", Number: 8080, Protocol: model.ProtocolHTTP}}}
	eps := []*model.Endpoint{
		{Address: "10.1.0.1", Namespace: "default", TLSMode: "disabled"},
		{Address: "10.1.0.2", Namespace: "default", TLSMode: "disabled", Health: model.Unhealthy},
		{Address: "10.1.0.3", Namespace: "default", TLSMode: "disabled", Health: model.Draining},
	}
	snap := model.NewSnapshot(model.SnapshotInput{
		DomainSuffix: "cluster.local", Services: []*model.Service{svc},
		Endpoints: map[model.ServiceKey][]*model.Endpoint{svc.Key(): eps},
	})
	clas := endpoint.Build(snap.Scope(productpage()), []string{outbound(8080, "", svc.Hostname)})
	if len(clas) != 1 {
		t.Fatalf("%d assignments", len(clas))
	}
	got := map[string]string{}
	for _, l := range clas[0].GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			got[e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = e.GetHealthStatus().String()
		}
	}
	want := map[string]string{"10.1.0.1": "HEALTHY", "10.1.0.2": "UNHEALTHY", "10.1.0.3": "DRAINING"}
	if len(got) != len(want) {
		t.Fatalf("health %v, want %v", got, want)
	}
	for a, h := range want {
		if got[a] != h {
			t.Errorf("%s: health_status %s, want %s", a, got[a], h)
		}
	}
}
