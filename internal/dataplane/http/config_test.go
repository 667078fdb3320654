package http_test

import (
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
	genlistener "github.com/trellismesh/trellis/internal/xds/gen/listener"
	genroute "github.com/trellismesh/trellis/internal/xds/gen/route"
)

// Cluster names the generators give the test services.
const (
	reviewsV1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
	reviewsV2 = "outbound|9080|v2|reviews.default.svc.cluster.local"
	reviewsV3 = "outbound|9080|v3|reviews.default.svc.cluster.local"
	ratingsV1 = "outbound|9080|v1|ratings.default.svc.cluster.local"
	ratingsV2 = "outbound|9080|v2|ratings.default.svc.cluster.local"
	detailsV1 = "outbound|9080|v1|details.default.svc.cluster.local"
	detailsV2 = "outbound|9080|v2|details.default.svc.cluster.local"
	echoAll   = "outbound|9080||echo.default.svc.cluster.local"
)

// meshConfig generates, with the control plane's generators, the outbound
// HTTP connection manager of port 9080 and its RDS route configuration
// "9080" for a sleep sidecar in default, from Bookinfo, the sample
// destination rules and testdata/mesh.yaml.
func meshConfig(t testing.TB) (*hcmv3.HttpConnectionManager, *routev3.RouteConfiguration) {
	t.Helper()
	cfgs := gentest.Files(t, gentest.Bookinfo(), gentest.Sample(t, "bookinfo/networking/destination-rule-all.yaml"), "testdata/mesh.yaml")
	sc := gentest.NewSnapshot(nil, cfgs).Scope(gentest.Proxy("10.0.0.100", "default", map[string]string{"app": "sleep"}))
	rcs, err := genroute.BuildWithErrors(sc, []string{genlistener.RouteName(9080)})
	if err != nil {
		t.Fatalf("generating routes: %v", err)
	}
	gentest.Validate(t, rcs[0])
	var hcm *hcmv3.HttpConnectionManager
	for _, l := range genlistener.Build(sc) {
		if l.GetName() != genlistener.Name("0.0.0.0", 9080) {
			continue
		}
		hcm = hcmOf(t, l)
	}
	if hcm == nil {
		t.Fatal("no 0.0.0.0_9080 listener with an HTTP connection manager")
	}
	return hcm, rcs[0]
}

// hcmOf returns the first HTTP connection manager of a listener.
func hcmOf(t testing.TB, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			h := &hcmv3.HttpConnectionManager{}
			if err := anypb.UnmarshalTo(f.GetTypedConfig(), h, proto.UnmarshalOptions{}); err == nil {
				return h
			}
		}
	}
	return nil
}
