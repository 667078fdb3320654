package route

import (
	"runtime"
	"testing"
	"time"
	"unsafe"
	"weak"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// detachRC is an Istio-like virtual host using every field the table
// copies out of the message: names, domains, clusters, route metadata,
// decorator, buffer limits, retry policy, metadata_match and a typed
// per-filter config.
const detachRC = `{"name":"9080","virtual_hosts":[{
  "name":"reviews.default.svc.cluster.local:9080",
  "domains":["reviews.default.svc.cluster.local","reviews"],
  "per_request_buffer_limit_bytes":2048,
  "retry_policy":{"retry_on":"connect-failure,refused-stream","num_retries":2},
  "routes":[
    {"name":"default","match":{"prefix":"/api/"},
     "metadata":{"filter_metadata":{"istio":{"config":"/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}},
     "decorator":{"operation":"reviews.default.svc.cluster.local:9080/api/*"},
     "per_request_buffer_limit_bytes":1024,
     "typed_per_filter_config":{"envoy.filters.http.fault":{"@type":"type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault","abort":{"http_status":418,"percentage":{"numerator":100}}}},
     "route":{"cluster":"outbound|9080|v1|reviews.default.svc.cluster.local",
              "metadata_match":{"filter_metadata":{"envoy.lb":{"version":"v1"}}},
              "retry_policy":{"retry_on":"5xx","num_retries":3}}},
    {"name":"split","match":{"prefix":"/"},
     "route":{"weighted_clusters":{"clusters":[
       {"name":"outbound|9080|v2|reviews.default.svc.cluster.local","weight":1,
        "metadata_match":{"filter_metadata":{"envoy.lb":{"version":"v2"}}}}]}}}]}]}`

// decodeDetachRC decodes detachRC from the wire format, as the xDS client
// does.
func decodeDetachRC(t *testing.T) *routev3.RouteConfiguration {
	t.Helper()
	b, err := proto.Marshal(parseRC(t, detachRC))
	if err != nil {
		t.Fatal(err)
	}
	rc := &routev3.RouteConfiguration{}
	if err := proto.Unmarshal(b, rc); err != nil {
		t.Fatal(err)
	}
	return rc
}

// checkDetachTable checks what the table answers for detachRC.
func checkDetachTable(t *testing.T, tbl *Table) {
	t.Helper()
	rt := tbl.Match(req("GET", "reviews", "/api/1"))
	if rt == nil || rt.Name != "default" {
		t.Fatalf("/api/1 matched %s, want default", routeName(rt))
	}
	if rt.VirtualHost.Name != "reviews.default.svc.cluster.local:9080" {
		t.Errorf("virtual host %q", rt.VirtualHost.Name)
	}
	if got := rt.IstioConfig(); got != "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews" {
		t.Errorf("istio config %q", got)
	}
	if rt.Decorator == nil || rt.Decorator.Operation != "reviews.default.svc.cluster.local:9080/api/*" {
		t.Errorf("decorator %+v", rt.Decorator)
	}
	if l, ok := rt.BufferLimit(); !ok || l != 1024 {
		t.Errorf("route buffer limit %d %v, want 1024", l, ok)
	}
	f := rt.Action.(*Forward)
	if f.Cluster != "outbound|9080|v1|reviews.default.svc.cluster.local" {
		t.Errorf("cluster %q", f.Cluster)
	}
	if f.Retry == nil || f.Retry.NumRetries != 3 || !f.Retry.On.Has(Retry5xx) {
		t.Errorf("retry %+v", f.Retry)
	}
	if v := f.MetadataMatch.GetFilterMetadata()["envoy.lb"].GetFields()["version"].GetStringValue(); v != "v1" {
		t.Errorf("metadata_match version %q", v)
	}
	if c, ok := rt.Filter(FaultFilter, nil); !ok || c.Config.GetTypeUrl() != faultType || len(c.Config.GetValue()) == 0 {
		t.Errorf("fault filter config %v %v", c, ok)
	}
	if fa := rt.Fault(nil); fa == nil || fa.Abort == nil {
		t.Errorf("fault %+v", fa)
	}
	split := tbl.Match(req("GET", "reviews", "/x"))
	if split == nil || split.Name != "split" {
		t.Fatalf("/x matched %s, want split", routeName(split))
	}
	if l, ok := split.BufferLimit(); !ok || l != 2048 {
		t.Errorf("virtual host buffer limit %d %v, want 2048", l, ok)
	}
	sf := split.Action.(*Forward)
	if sf.Retry == nil || sf.Retry.NumRetries != 2 {
		t.Errorf("virtual host retry %+v", sf.Retry)
	}
	wc := sf.Weighted.Clusters[0]
	if wc.Name != "outbound|9080|v2|reviews.default.svc.cluster.local" ||
		wc.MetadataMatch.GetFilterMetadata()["envoy.lb"].GetFields()["version"].GetStringValue() != "v2" {
		t.Errorf("weighted cluster %q %v", wc.Name, wc.MetadataMatch)
	}
}

// TestTableOutlivesMessageChanges compiles, then rewrites every part of
// the decoded message the table reads (in place where it could be
// shared): the table answers as before.
func TestTableOutlivesMessageChanges(t *testing.T) {
	rc := decodeDetachRC(t)
	tbl, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	vc := rc.GetVirtualHosts()[0]
	r0 := vc.GetRoutes()[0]
	ra := r0.GetRoute()
	ra.GetMetadataMatch().GetFilterMetadata()["envoy.lb"].Fields["version"] = structpb.NewStringValue("changed")
	vc.GetRoutes()[1].GetRoute().GetWeightedClusters().GetClusters()[0].GetMetadataMatch().
		GetFilterMetadata()["envoy.lb"].Fields["version"] = structpb.NewStringValue("changed")
	anyv := r0.GetTypedPerFilterConfig()[FaultFilter]
	clear(anyv.Value)
	anyv.TypeUrl = "changed"
	r0.GetMetadata().GetFilterMetadata()["istio"].Fields["config"] = structpb.NewStringValue("changed")
	r0.Decorator.Operation = "changed"
	r0.PerRequestBufferLimitBytes.Value = 1
	vc.PerRequestBufferLimitBytes.Value = 1
	ra.GetRetryPolicy().NumRetries.Value = 9
	vc.GetRetryPolicy().NumRetries.Value = 9
	ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "changed"}
	vc.Name, vc.Domains[1], r0.Name = "changed", "changed", "changed"
	checkDetachTable(t, tbl)
}

// weakRefs are weak pointers into a decoded message.
type weakRefs struct {
	vhost    weak.Pointer[routev3.VirtualHost]
	route    weak.Pointer[routev3.Route]
	action   weak.Pointer[routev3.RouteAction]
	retry    weak.Pointer[routev3.RetryPolicy]
	match    weak.Pointer[routev3.RouteMatch]
	mdMatch  weak.Pointer[corev3.Metadata]
	metadata weak.Pointer[corev3.Metadata]
	filter   weak.Pointer[anypb.Any]
	cluster  weak.Pointer[byte] // the cluster name's bytes
	vhName   weak.Pointer[byte]
	domain   weak.Pointer[byte]
}

func (w weakRefs) live() []string {
	var out []string
	add := func(name string, alive bool) {
		if alive {
			out = append(out, name)
		}
	}
	add("VirtualHost", w.vhost.Value() != nil)
	add("Route", w.route.Value() != nil)
	add("RouteAction", w.action.Value() != nil)
	add("RetryPolicy", w.retry.Value() != nil)
	add("RouteMatch", w.match.Value() != nil)
	add("metadata_match", w.mdMatch.Value() != nil)
	add("metadata", w.metadata.Value() != nil)
	add("typed_per_filter_config", w.filter.Value() != nil)
	add("cluster name", w.cluster.Value() != nil)
	add("virtual host name", w.vhName.Value() != nil)
	add("domain", w.domain.Value() != nil)
	return out
}

// compileWeak compiles a freshly decoded message and returns the table
// with weak pointers into the message, which is then unreachable.
func compileWeak(t *testing.T) (*Table, weakRefs) {
	rc := decodeDetachRC(t)
	tbl, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	vc := rc.GetVirtualHosts()[0]
	r0 := vc.GetRoutes()[0]
	return tbl, weakRefs{
		vhost:    weak.Make(vc),
		route:    weak.Make(r0),
		action:   weak.Make(r0.GetRoute()),
		retry:    weak.Make(r0.GetRoute().GetRetryPolicy()),
		match:    weak.Make(r0.GetMatch()),
		mdMatch:  weak.Make(r0.GetRoute().GetMetadataMatch()),
		metadata: weak.Make(r0.GetMetadata()),
		filter:   weak.Make(r0.GetTypedPerFilterConfig()[FaultFilter]),
		cluster:  weak.Make(unsafe.StringData(r0.GetRoute().GetCluster())),
		vhName:   weak.Make(unsafe.StringData(vc.GetName())),
		domain:   weak.Make(unsafe.StringData(vc.GetDomains()[0])),
	}
}

// TestTableKeepsNothingOfTheMessage: once the decoded message is dropped,
// the garbage collector frees it (every message the table used to keep,
// and the strings it reads) while the table lives and still answers.
func TestTableKeepsNothingOfTheMessage(t *testing.T) {
	tbl, refs := compileWeak(t)
	deadline := time.Now().Add(5 * time.Second)
	live := refs.live()
	for len(live) > 0 && time.Now().Before(deadline) {
		runtime.GC()
		live = refs.live()
	}
	if len(live) > 0 {
		t.Errorf("the compiled table keeps parts of the decoded message alive: %v", live)
	}
	checkDetachTable(t, tbl)
	runtime.KeepAlive(tbl)
}
