package telemetry

import (
	"maps"
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// countingSet records which resources were decoded.
type countingSet struct {
	xdsset.Set
	decoded map[string]int
}

func counting(s xdsset.Set) *countingSet { return &countingSet{Set: s, decoded: map[string]int{}} }

func (c *countingSet) Msg(name string) (proto.Message, error) {
	c.decoded[name]++
	return c.Set.Msg(name)
}

func (c *countingSet) names() []string { return slices.Sorted(maps.Keys(c.decoded)) }

func assignment(name, ip, workload string) *endpointv3.ClusterLoadAssignment {
	wl, err := structpb.NewStruct(map[string]any{"workload": workload + ";shop;" + workload + ";v1;"})
	if err != nil {
		panic(err)
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": wl}},
		}}}},
	}
}

// TestSetsDecodeChangedOnly checks that a new set decodes only the
// resources whose version changed, and that the metadata follows the
// changes (and keeps what did not change).
func TestSetsDecodeChangedOnly(t *testing.T) {
	const a, b = "outbound|9080||a.shop.svc.cluster.local", "outbound|9080||b.shop.svc.cluster.local"
	eds := func(name, svc string) *clusterv3.Cluster {
		return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: svc}}
	}
	m := New(Config{Local: local})
	cs := counting(xdsset.Of(map[string]*clusterv3.Cluster{a: eds(a, "eds-a"), b: eds(b, "eds-b")}))
	mustSet(t, m.SetClusters(cs))
	es := counting(xdsset.Of(map[string]*endpointv3.ClusterLoadAssignment{
		"eds-a": assignment("eds-a", "10.0.0.1", "a-v1"), "eds-b": assignment("eds-b", "10.0.0.2", "b-v1"),
	}))
	mustSet(t, m.SetEndpoints(es))
	if got := es.names(); !slices.Equal(got, []string{"eds-a", "eds-b"}) {
		t.Fatalf("first set decoded %v, want both", got)
	}

	// b's assignment changes, a's does not; the clusters are the same.
	cs = counting(xdsset.Of(map[string]*clusterv3.Cluster{a: eds(a, "eds-a"), b: eds(b, "eds-b")}))
	mustSet(t, m.SetClusters(cs))
	if got := cs.names(); len(got) != 0 {
		t.Errorf("unchanged clusters decoded again: %v", got)
	}
	es = counting(xdsset.Of(map[string]*endpointv3.ClusterLoadAssignment{
		"eds-a": assignment("eds-a", "10.0.0.1", "a-v1"), "eds-b": assignment("eds-b", "10.0.0.3", "b-v2"),
	}))
	mustSet(t, m.SetEndpoints(es))
	if got := es.names(); !slices.Equal(got, []string{"eds-b"}) {
		t.Errorf("decoded %v, want only the changed eds-b", got)
	}
	md := m.meta.Load()
	if w := workloadOf(md, a, "10.0.0.1:9080").Name; w != "a-v1" {
		t.Errorf("unchanged a: workload %q, want a-v1", w)
	}
	if w := workloadOf(md, b, "10.0.0.3:9080").Name; w != "b-v2" {
		t.Errorf("changed b: workload %q at the new host, want b-v2", w)
	}
	if w := workloadOf(md, b, "10.0.0.2:9080"); w != (Workload{}) {
		t.Errorf("changed b: old host 10.0.0.2 still has a workload")
	}

	// A removed assignment takes its workloads with it.
	mustSet(t, m.SetEndpoints(xdsset.Of(map[string]*endpointv3.ClusterLoadAssignment{"eds-a": assignment("eds-a", "10.0.0.1", "a-v1")})))
	m.Observe(&filter.Record{Cluster: b, UpstreamHost: "10.0.0.3:9080", ResponseCode: 200})
	body := scrape(t, m.Handler())
	if v, _, ok := sample(body, "istio_requests_total", map[string]string{"destination_workload": "unknown", "destination_service_name": "b"}); !ok || v != "1" {
		t.Errorf("request to the removed b endpoint: %q %v, want destination_workload unknown\n%s", v, ok, body)
	}
}
