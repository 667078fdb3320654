package telemetry

import (
	"fmt"
	"runtime"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// benchSets returns the CDS set of n EDS services and their EDS set, 5
// endpoints each, every endpoint its own workload (the shape of
// bench/internal/benchmesh: one WorkloadEntry per endpoint), named after
// version.
func benchSets(n int, version string) (xdsset.Set, xdsset.Set) {
	cs := map[string]*clusterv3.Cluster{}
	es := map[string]*endpointv3.ClusterLoadAssignment{}
	for i := range n {
		name := fmt.Sprintf("outbound|9080||svc%d.shop.svc.cluster.local", i)
		eds := "eds-" + name
		cs[name] = &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: eds}}
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: eds}
		for e := range 5 {
			ip := fmt.Sprintf("10.%d.%d.%d", e, i/256, i%256)
			cla.Endpoints = append(cla.Endpoints, assignment(eds, ip, fmt.Sprintf("svc%d-%d-%s", i, e, version)).Endpoints...)
		}
		es[eds] = cla
	}
	return xdsset.Of(cs), xdsset.Of(es)
}

// BenchmarkSetEndpoints1000 times an EDS update that changes all of 1,000
// services' assignments (5 endpoints each), and reports the heap the
// metrics keep for 1,000 services (retained-B: after a forced GC, with
// the sets themselves excluded).
func BenchmarkSetEndpoints1000(b *testing.B) {
	cs, es1 := benchSets(1000, "v1")
	_, es2 := benchSets(1000, "v2")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := New(Config{Local: local})
	if err := m.SetClusters(cs); err != nil {
		b.Fatal(err)
	}
	if err := m.SetEndpoints(es1); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	retained := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		es := es2
		if i%2 == 1 {
			es = es1
		}
		if err := m.SetEndpoints(es); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(retained, "retained-B")
	runtime.KeepAlive(m)
}

// BenchmarkWorkloadLookup is the destination workload's cost on a label
// cache miss: "first" builds a 5-endpoint cluster's map (the first
// request to the cluster after it changed), "built" looks up in it.
func BenchmarkWorkloadLookup(b *testing.B) {
	_, es := benchSets(1, "v1")
	m := New(Config{Local: local})
	if err := m.SetEndpoints(es); err != nil {
		b.Fatal(err)
	}
	var src []hosts
	for _, cw := range m.meta.Load().workloads {
		src = cw.sources
	}
	host := "10.4.0.0:9080"
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if w := (&clusterWorkloads{sources: src}).lookup(host, &m.workloadMaps); w.Name != "svc0-4-v1" {
				b.Fatalf("workload %+v", w)
			}
		}
	})
	b.Run("built", func(b *testing.B) {
		cw := &clusterWorkloads{sources: src}
		b.ReportAllocs()
		for b.Loop() {
			if w := cw.lookup(host, &m.workloadMaps); w.Name != "svc0-4-v1" {
				b.Fatalf("workload %+v", w)
			}
		}
	})
}
