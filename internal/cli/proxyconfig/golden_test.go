package proxyconfig

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/opaque"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// golden compares got with testdata/<name>.golden, or rewrites it with
// -update (the flag gentest registers).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run go test -update to create it)", name, err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("golden %s differs (-want +got; go test -update accepts):\n%s", path,
			cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")))
	}
}

// generated holds what the real generator produces for one proxy, by type.
type generated map[string][]xds.Resource

// generate runs the generator as the ADS server would for a proxy that
// subscribes to every EDS cluster and every RDS route its CDS and LDS name.
func generate(t *testing.T, snap *model.Snapshot, p *model.Proxy) generated {
	t.Helper()
	g := gen.New()
	out := generated{}
	run := func(typeURL string, names []string) {
		res, err := g.Generate(snap, p, typeURL, names)
		if err != nil {
			t.Fatalf("generate %s: %v", xds.ShortName(typeURL), err)
		}
		out[typeURL] = res
	}
	run(xds.ClusterType, nil)
	run(xds.ListenerType, nil)
	var eds, rds []string
	for _, r := range out[xds.ClusterType] {
		var c clusterv3.Cluster
		if err := r.Body.UnmarshalTo(&c); err != nil {
			t.Fatal(err)
		}
		if c.GetType() == clusterv3.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.GetName()
			}
			eds = append(eds, name)
		}
	}
	for _, r := range out[xds.ListenerType] {
		var l listenerv3.Listener
		if err := r.Body.UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		for _, fc := range append(slices.Clone(l.GetFilterChains()), l.GetDefaultFilterChain()) {
			for _, f := range fc.GetFilters() {
				var hcm hcmv3.HttpConnectionManager
				if f.GetTypedConfig().UnmarshalTo(&hcm) == nil && hcm.GetRds() != nil {
					rds = append(rds, hcm.GetRds().GetRouteConfigName())
				}
			}
		}
	}
	slices.Sort(eds)
	slices.Sort(rds)
	run(xds.EndpointType, slices.Compact(eds))
	run(xds.RouteType, slices.Compact(rds))
	return out
}

// envoyDump renders generated resources as Envoy's admin ConfigDump JSON.
func envoyDump(t *testing.T, g generated) []byte {
	t.Helper()
	cd := &adminv3.ConfigDump{}
	section := func(m proto.Message) {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		cd.Configs = append(cd.Configs, a)
	}
	clusters := &adminv3.ClustersConfigDump{VersionInfo: "v1"}
	for _, r := range g[xds.ClusterType] {
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: "v1", Cluster: r.Body})
	}
	section(clusters)
	eps := &adminv3.EndpointsConfigDump{}
	for _, r := range g[xds.EndpointType] {
		eps.DynamicEndpointConfigs = append(eps.DynamicEndpointConfigs, &adminv3.EndpointsConfigDump_DynamicEndpointConfig{VersionInfo: "v1", EndpointConfig: r.Body})
	}
	section(eps)
	ls := &adminv3.ListenersConfigDump{VersionInfo: "v1"}
	for _, r := range g[xds.ListenerType] {
		ls.DynamicListeners = append(ls.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: r.Name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: "v1", Listener: r.Body}})
	}
	section(ls)
	rs := &adminv3.RoutesConfigDump{}
	for _, r := range g[xds.RouteType] {
		rs.DynamicRouteConfigs = append(rs.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: "v1", RouteConfig: r.Body})
	}
	section(rs)
	b, err := protojson.MarshalOptions{Multiline: true, Resolver: &opaque.Resolver{}}.Marshal(cd)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sidecarDump renders generated resources in the Trellis sidecar's
// /config_dump format.
func sidecarDump(t *testing.T, g generated) []byte {
	t.Helper()
	out := map[string]map[string]json.RawMessage{}
	for typeURL, short := range map[string]string{
		xds.ClusterType: "clusters", xds.EndpointType: "endpoints", xds.ListenerType: "listeners", xds.RouteType: "routes",
	} {
		m := map[string]json.RawMessage{}
		for _, r := range g[typeURL] {
			msg, err := r.Body.UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			b, err := protojson.MarshalOptions{Resolver: &opaque.Resolver{}}.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			m[r.Name] = b
		}
		out[short] = m
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func render(t *testing.T, tables ...Table) []byte {
	t.Helper()
	var buf bytes.Buffer
	for k, tb := range tables {
		if k > 0 {
			buf.WriteString("\n")
		}
		if err := tb.Write(&buf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestTablesGolden renders every table for productpage and reviews-v2 in
// Bookinfo with Istio's mTLS destination rules and the jason → v2 route,
// from the real generator's output, through both dump formats.
func TestTablesGolden(t *testing.T) {
	snap := gentest.Snapshot(t, gentest.Bookinfo(),
		gentest.Sample(t, "bookinfo/networking/destination-rule-all-mtls.yaml"),
		gentest.Sample(t, "bookinfo/networking/virtual-service-reviews-test-v2.yaml"))
	for _, tc := range []struct {
		name  string
		proxy *model.Proxy
	}{
		{"productpage", gentest.Proxy("10.0.0.1", "default", map[string]string{"app": "productpage", "version": "v1"})},
		{"reviews-v2", gentest.Proxy("10.0.0.4", "default", map[string]string{"app": "reviews", "version": "v2"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := generate(t, snap, tc.proxy)
			var outputs [][]byte
			for _, raw := range [][]byte{envoyDump(t, g), sidecarDump(t, g)} {
				d, err := Parse(raw)
				if err != nil {
					t.Fatal(err)
				}
				outputs = append(outputs, render(t,
					ListenerTable(d, Filter{}), RouteTable(d, Filter{}), ClusterTable(d, Filter{}),
					EndpointTable(EDSEndpoints(d), Filter{}), SecretTable(d)))
			}
			golden(t, tc.name, outputs[0])
			if !bytes.Equal(outputs[0], outputs[1]) {
				t.Errorf("the sidecar's dump format gives other tables:\n%s", cmp.Diff(string(outputs[0]), string(outputs[1])))
			}
		})
	}
}

// TestFiltersGolden applies the istioctl-style filters.
func TestFiltersGolden(t *testing.T) {
	snap := gentest.Snapshot(t, gentest.Bookinfo(),
		gentest.Sample(t, "bookinfo/networking/destination-rule-all-mtls.yaml"),
		gentest.Sample(t, "bookinfo/networking/virtual-service-reviews-test-v2.yaml"))
	g := generate(t, snap, gentest.Proxy("10.0.0.1", "default", map[string]string{"app": "productpage", "version": "v1"}))
	d, err := Parse(envoyDump(t, g))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "filters", render(t,
		ListenerTable(d, Filter{Port: 9080}),
		RouteTable(d, Filter{Name: "9080"}),
		ClusterTable(d, Filter{FQDN: "reviews.default.svc.cluster.local", Subset: "v2"}),
		ClusterTable(d, Filter{Direction: "inbound"}),
		EndpointTable(EDSEndpoints(d), Filter{Cluster: "outbound|9080|v2|reviews.default.svc.cluster.local"}),
		EndpointTable(EDSEndpoints(d), Filter{Address: "10.0.0.2", Port: 9080}),
	))
}
