package telemetry

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
	"weak"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

func TestEndpointWorkload(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        Workload
		ok          bool
	}{
		{name: "all fields", value: "reviews-v1;shop;reviews;v1;Kubernetes",
			want: Workload{Name: "reviews-v1", Namespace: "shop", CanonicalService: "reviews", CanonicalRevision: "v1", Cluster: "Kubernetes"}, ok: true},
		{name: "empty cluster", value: "reviews-v1;shop;reviews;v1;",
			want: Workload{Name: "reviews-v1", Namespace: "shop", CanonicalService: "reviews", CanonicalRevision: "v1"}, ok: true},
		{name: "fewer fields", value: "reviews-v1;shop",
			want: Workload{Name: "reviews-v1", Namespace: "shop"}, ok: true},
		{name: "name only", value: "reviews-v1", want: Workload{Name: "reviews-v1"}, ok: true},
		{name: "extra fields ignored", value: "a;b;c;d;e;f;g",
			want: Workload{Name: "a", Namespace: "b", CanonicalService: "c", CanonicalRevision: "d", Cluster: "e"}, ok: true},
		{name: "empty fields", value: ";;;;", want: Workload{}, ok: true},
		{name: "absent", value: "", ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var md *corev3.Metadata
			if tc.value != "" {
				md = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{istioKey: {Fields: map[string]*structpb.Value{
					"workload": structpb.NewStringValue(tc.value)}}}}
			}
			got, ok := endpointWorkload(md)
			if got != tc.want || ok != tc.ok {
				t.Errorf("endpointWorkload(%q) = %+v, %v; want %+v, %v", tc.value, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// decoded returns m as the xDS client gives it: decoded from its wire
// form, sharing nothing with m.
func decoded[T proto.Message](t *testing.T, m T) T {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := m.ProtoReflect().New().Interface().(T)
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// within reports whether s's bytes lie inside of's.
func within(s, of string) bool {
	if len(s) == 0 || len(of) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(of)))
	return p >= lo && p < lo+uintptr(len(of))
}

// TestEndpointWorkloadsShareCanonicalStrings: replicas of a workload
// share one copy of each label value, and none of them is a substring of
// the decoded metadata.
func TestEndpointWorkloadsShareCanonicalStrings(t *testing.T) {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "eds-reviews"}
	for i := range 3 {
		cla.Endpoints = append(cla.Endpoints, assignment("eds-reviews", fmt.Sprintf("10.0.0.%d", i+1), "reviews-v1").Endpoints...)
	}
	cla = decoded(t, cla)
	cw := &clusterWorkloads{sources: []hosts{endpointHosts(cla)}}
	built := new(atomic.Int64)
	var first Workload
	for _, lle := range cla.GetEndpoints() {
		lbe := lle.GetLbEndpoints()[0]
		src := lbe.GetMetadata().GetFilterMetadata()[istioKey].GetFields()["workload"].GetStringValue()
		w := cw.lookup(lbe.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()+":9080", built)
		want := Workload{Name: "reviews-v1", Namespace: "shop", CanonicalService: "reviews-v1", CanonicalRevision: "v1"}
		if w != want {
			t.Fatalf("workload %+v, want %+v", w, want)
		}
		for _, f := range []string{w.Name, w.Namespace, w.CanonicalService, w.CanonicalRevision} {
			if within(f, src) {
				t.Errorf("label %q is a substring of the decoded metadata %q", f, src)
			}
		}
		if first == (Workload{}) {
			first = w
			continue
		}
		if unsafe.StringData(w.Name) != unsafe.StringData(first.Name) || unsafe.StringData(w.Namespace) != unsafe.StringData(first.Namespace) {
			t.Errorf("replicas keep separate copies of their labels")
		}
	}
}

// TestSetsKeepNoDecodedString: once a set is applied and dropped, the
// decoded strings the labels were read from are collected, and the labels
// live on.
func TestSetsKeepNoDecodedString(t *testing.T) {
	const cluster = "outbound|9080||reviews.shop.svc.cluster.local"
	m := New(Config{Local: local})
	apply := func() (weak.Pointer[byte], weak.Pointer[byte]) {
		c := decoded(t, &clusterv3.Cluster{Name: cluster, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: "eds-reviews"}})
		mustSet(t, m.SetClusters(xdsset.Of(map[string]*clusterv3.Cluster{cluster: c})))
		cla := decoded(t, assignment("eds-reviews", "10.0.0.1", "reviews-v1-with-a-long-workload-name"))
		mustSet(t, m.SetEndpoints(xdsset.Of(map[string]*endpointv3.ClusterLoadAssignment{"eds-reviews": cla})))
		wl := cla.GetEndpoints()[0].GetLbEndpoints()[0].GetMetadata().GetFilterMetadata()[istioKey].GetFields()["workload"].GetStringValue()
		return weak.Make(unsafe.StringData(wl)), weak.Make(unsafe.StringData(c.GetName()))
	}
	wl, name := apply()
	deadline := time.Now().Add(5 * time.Second)
	for wl.Value() != nil || name.Value() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("decoded strings still reachable after their sets were applied and dropped: istio.workload %v, cluster name (destination service parsed from it) %v",
				wl.Value() != nil, name.Value() != nil)
		}
		runtime.GC()
	}
	md := m.meta.Load()
	if w := workloadOf(md, cluster, "10.0.0.1:9080"); w.Name != "reviews-v1-with-a-long-workload-name" || w.Namespace != "shop" {
		t.Errorf("workload after collection %+v", w)
	}
	if s := md.services[cluster]; s.Name != "reviews" || s.Namespace != "shop" || s.Host != "reviews.shop.svc.cluster.local" {
		t.Errorf("service after collection %+v", s)
	}
}

// workloadOf looks host's workload up in cluster's map, as labels does
// (building the map if need be).
func workloadOf(md *metadata, cluster, host string) Workload {
	return md.workloads[cluster].lookup(host, new(atomic.Int64))
}
