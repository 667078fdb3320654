package sidecar

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
)

// TestMetricsWiring feeds a request record to the sidecar's observer after
// CDS delivered the cluster's service metadata, and scrapes both the admin
// and the merged metrics endpoints.
func TestMetricsWiring(t *testing.T) {
	node, err := NodeConfig{IP: "10.0.0.7", PodName: "web-1", Namespace: "shop", WorkloadName: "web",
		Labels: map[string]string{"app": "web", "version": "v1"}}.Node()
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{XDSAddress: "127.0.0.1:1", Node: node})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MetricsAddress != ":15020" {
		t.Errorf("MetricsAddress = %q, want :15020", s.cfg.MetricsAddress)
	}
	const name = "outbound|80||api.billing.svc.cluster.local"
	md, _ := structpb.NewStruct(map[string]any{"services": []any{map[string]any{
		"host": "api.billing.svc.cluster.local", "name": "api", "namespace": "billing"}}})
	c := &clusterv3.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		Metadata:             &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": md}}}
	set, err := xdsclient.SetOf(xdsclient.ClusterType, map[string]proto.Message{name: c}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if errs := s.Apply(set); len(errs) > 0 {
		t.Fatalf("Apply: %v", errs)
	}
	s.metrics.Observe(&filter.Record{Listener: "0.0.0.0_80", Cluster: name, ResponseCode: 503,
		Flags: filter.NoHealthyUpstream, Duration: 3 * time.Millisecond})

	for what, h := range map[string]http.Handler{"admin": s.adminHandler(context.Background(), &sync.WaitGroup{}), "merged": s.metricsHandler()} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/stats/prometheus", nil)
		req.RemoteAddr = "127.0.0.1:40000" // the admin endpoint serves local callers only
		h.ServeHTTP(rec, req)
		body := rec.Body.String()
		var line string
		for l := range strings.SplitSeq(body, "\n") {
			if strings.HasPrefix(l, "istio_requests_total{") {
				line = l
			}
		}
		t.Logf("%s: %s", what, line)
		for _, want := range []string{`reporter="source"`, `source_workload="web"`, `source_workload_namespace="shop"`,
			`source_app="web"`, `source_version="v1"`, `destination_service="api.billing.svc.cluster.local"`,
			`destination_service_name="api"`, `destination_service_namespace="billing"`, `response_code="503"`,
			`response_flags="UH"`, `destination_workload="unknown"`} {
			if !strings.Contains(line, want) {
				t.Errorf("%s: istio_requests_total lacks %s: %q", what, want, line)
			}
		}
		if !strings.HasSuffix(line, " 1") {
			t.Errorf("%s: count: %q", what, line)
		}
	}
}
