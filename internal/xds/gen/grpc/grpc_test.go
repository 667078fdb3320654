package grpc

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

const reviews = "reviews.default.svc.cluster.local"

func grpcProxy() *model.Proxy {
	p := gentest.Proxy("10.9.9.9", "default", map[string]string{"app": "client"})
	p.Generator = model.GeneratorGRPC
	return p
}

// reviewsGRPC declares reviews with a GRPC port and three versions.
const reviewsGRPC = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  resolution: STATIC
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
    tls: {mode: ISTIO_MUTUAL}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
`

const reviewsVS = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
    corsPolicy: {allowOrigins: [{exact: "https://example.com"}]}
    mirror: {host: reviews, subset: v1}
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
    timeout: 2s
    retries: {attempts: 3, retryOn: "unavailable,5xx"}
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}
`

func TestGolden(t *testing.T) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, reviewsGRPC+"---"+reviewsVS))
	sc := snap.Scope(grpcProxy())
	var msgs []proto.Message
	for _, l := range Listeners(sc, []string{reviews + ":9080", "unknown.default.svc.cluster.local:9080", reviews + ":1"}) {
		msgs = append(msgs, l)
	}
	rds := Routes(sc, []string{"outbound|9080||" + reviews, "outbound|9080|v1|" + reviews, "9080"})
	for _, r := range rds {
		msgs = append(msgs, r)
	}
	cds := Clusters(sc, []string{"outbound|9080|v1|" + reviews, "outbound|9080|v2|" + reviews, "outbound|9080||" + reviews, "outbound|9080|v9|" + reviews})
	for _, c := range cds {
		msgs = append(msgs, c)
	}
	gentest.Validate(t, msgs...)
	gentest.Golden(t, "reviews", msgs...)

	if len(msgs) != 1+1+3 {
		t.Fatalf("want 1 listener, 1 route configuration, 3 clusters; got %d resources", len(msgs))
	}
	// What gRPC would reject must be gone.
	for _, vh := range rds[0].GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			for k := range r.GetTypedPerFilterConfig() {
				if k != faultFilter {
					t.Errorf("route %q keeps filter config %q", r.GetName(), k)
				}
			}
			if len(r.GetRoute().GetRequestMirrorPolicies()) > 0 {
				t.Errorf("route %q keeps mirror policies", r.GetName())
			}
		}
	}
	for _, c := range cds {
		if c.GetTransportSocket() != nil || len(c.GetTransportSocketMatches()) > 0 {
			t.Errorf("cluster %q keeps a transport socket", c.GetName())
		}
		switch c.GetLbPolicy() {
		case clusterv3.Cluster_ROUND_ROBIN, clusterv3.Cluster_RING_HASH, clusterv3.Cluster_LEAST_REQUEST:
		default:
			t.Errorf("cluster %q has lb policy %v gRPC does not support", c.GetName(), c.GetLbPolicy())
		}
		if c.GetType() != clusterv3.Cluster_EDS {
			t.Errorf("cluster %q is %v, want EDS", c.GetName(), c.GetType())
		}
	}
}

func TestListenerPointsAtRoute(t *testing.T) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, reviewsGRPC+"---"+reviewsVS))
	ls := Listeners(snap.Scope(grpcProxy()), []string{reviews + ":9080"})
	if len(ls) != 1 {
		t.Fatalf("got %d listeners", len(ls))
	}
	var h hcmv3.HttpConnectionManager
	if err := ls[0].GetApiListener().GetApiListener().UnmarshalTo(&h); err != nil {
		t.Fatal(err)
	}
	if got, want := h.GetRds().GetRouteConfigName(), "outbound|9080||"+reviews; got != want {
		t.Errorf("route name = %q, want %q", got, want)
	}
	filters := h.GetHttpFilters()
	if len(filters) == 0 || filters[len(filters)-1].GetName() != routerFilter {
		t.Errorf("router must be the last HTTP filter: %v", filters)
	}
}

func TestShortNameTarget(t *testing.T) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, reviewsGRPC+"---"+reviewsVS))
	if ls := Listeners(snap.Scope(grpcProxy()), []string{"reviews:9080"}); len(ls) != 1 || ls[0].GetName() != "reviews:9080" {
		t.Errorf("short name target: got %v", ls)
	}
}

func TestRetriesWithoutAttemptsDropped(t *testing.T) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, reviewsGRPC+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 0}
`))
	rds := Routes(snap.Scope(grpcProxy()), []string{"outbound|9080||" + reviews})
	if len(rds) != 1 {
		t.Fatalf("got %d route configurations", len(rds))
	}
	for _, r := range rds[0].GetVirtualHosts()[0].GetRoutes() {
		if rp := r.GetRoute().GetRetryPolicy(); rp != nil {
			t.Errorf("route %q: retry policy %v sent to gRPC, which rejects num_retries 0", r.GetName(), rp)
		}
	}
}

// TestVirtualHostRetryPolicy covers a retry policy the sidecar routes share
// at the virtual host: gRPC gets it reduced there, the routes that shared
// it inherit it, and a route without retries gets an empty policy (gRPC:
// no retries) rather than none (the virtual host's) or num_retries 0
// (rejected).
func TestVirtualHostRetryPolicy(t *testing.T) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, reviewsGRPC+`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: a
    match: [{headers: {x-a: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: "off"
    match: [{headers: {x-off: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 0}
  - name: custom
    match: [{headers: {x-custom: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 4, retryOn: unavailable}
  - name: b
    route: [{destination: {host: reviews, subset: v2}}]
`))
	rds := Routes(snap.Scope(grpcProxy()), []string{"outbound|9080||" + reviews})
	if len(rds) != 1 {
		t.Fatalf("got %d route configurations", len(rds))
	}
	gentest.Validate(t, rds[0])
	vh := rds[0].GetVirtualHosts()[0]
	want := &routev3.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		NumRetries: wrapperspb.UInt32(2),
	}
	if !proto.Equal(vh.GetRetryPolicy(), want) {
		t.Errorf("virtual host retry policy = %v, want %v", vh.GetRetryPolicy(), want)
	}
	wantRoutes := map[string]*routev3.RetryPolicy{
		"a":      nil, // inherits the virtual host's
		"b":      nil,
		"off":    {},
		"custom": {RetryOn: "unavailable", NumRetries: wrapperspb.UInt32(4)},
	}
	for _, r := range vh.GetRoutes() {
		got := r.GetRoute().GetRetryPolicy()
		if w, ok := wantRoutes[r.GetName()]; !ok || !proto.Equal(got, w) || (w != nil) != (got != nil) {
			t.Errorf("route %q: retry policy %v, want %v", r.GetName(), got, w)
		}
	}
}

func TestReduceRetryPolicy(t *testing.T) {
	zero := &routev3.RetryPolicy{RetryOn: "unavailable", NumRetries: wrapperspb.UInt32(0)}
	if p := reduceRetryPolicy(zero); p != nil {
		t.Errorf("num_retries 0 reduced to %v, want none (gRPC rejects 0)", p)
	}
	for _, vhostRetries := range []bool{false, true} {
		r := &routev3.Route{Action: &routev3.Route_Route{Route: &routev3.RouteAction{RetryPolicy: proto.Clone(zero).(*routev3.RetryPolicy)}}}
		reduceRoute(r, vhostRetries)
		got := r.GetRoute().GetRetryPolicy()
		switch {
		case !vhostRetries && got != nil:
			t.Errorf("no virtual host policy: route keeps %v", got)
		case vhostRetries && (got == nil || proto.Size(got) != 0):
			t.Errorf("virtual host policy: route policy %v, want an empty one", got)
		}
	}
}

func TestBuildDispatch(t *testing.T) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(t, reviewsGRPC+"---"+reviewsVS))
	sc := snap.Scope(grpcProxy())
	for _, tc := range []struct {
		typeURL string
		names   []string
		want    int
	}{
		{xds.ListenerType, []string{reviews + ":9080"}, 1},
		{xds.RouteType, []string{"outbound|9080||" + reviews}, 1},
		{xds.ClusterType, []string{"outbound|9080|v1|" + reviews}, 1},
		{xds.EndpointType, []string{"outbound|9080|v1|" + reviews}, 1},
		{xds.ListenerType, nil, 0},
	} {
		res, err := Build(sc, tc.typeURL, tc.names)
		if err != nil || len(res) != tc.want {
			t.Errorf("%s %v: got %d resources, err %v; want %d", xds.ShortName(tc.typeURL), tc.names, len(res), err, tc.want)
		}
	}
	if _, err := Build(sc, "type.googleapis.com/unknown", nil); err == nil {
		t.Error("unknown type: want an error")
	}
}
