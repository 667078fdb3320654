package cluster

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// benchSnapshot has n services of 5 endpoints each (one HTTP port), every
// tenth with a DestinationRule of two subsets and a traffic policy.
func benchSnapshot(b *testing.B, n int) *model.Snapshot {
	b.Helper()
	var services []*model.Service
	endpoints := map[model.ServiceKey][]*model.Endpoint{}
	var rules string
	for i := 0; i < n; i++ {
		svc := &model.Service{
			Hostname:  fmt.Sprintf("svc-%04d.bench.svc.cluster.local", i),
			Namespace: "bench",
			Ports:     []model.Port{{Name: "http", Number: 8080, Protocol: model.ProtocolHTTP}},
		}
		services = append(services, svc)
		for j := 0; j < 5; j++ {
			endpoints[svc.Key()] = append(endpoints[svc.Key()], &model.Endpoint{
				Address:        fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1),
				Labels:         map[string]string{"app": fmt.Sprintf("svc-%04d", i), "version": fmt.Sprintf("v%d", j%2+1)},
				ServiceAccount: "bench",
				Namespace:      "bench",
				Locality:       fmt.Sprintf("region/zone%d", j%3),
				TLSMode:        "istio",
			})
		}
		if i%10 == 0 {
			rules += fmt.Sprintf(`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%04d, namespace: bench}
spec:
  host: svc-%04d.bench.svc.cluster.local
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}, http: {http2MaxRequests: 1000}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`, i, i)
		}
	}
	cfgs, err := gentest.Decode("bench", []byte(rules))
	if err != nil {
		b.Fatal(err)
	}
	return model.NewSnapshot(model.SnapshotInput{Version: "bench", Configs: cfgs, Services: services, Endpoints: endpoints})
}

// BenchmarkClusters1000 builds the CDS response of one sidecar in a mesh of
// 1000 services × 5 endpoints. Reported: time and allocations per build,
// and the size of the marshalled response (resp-bytes).
func BenchmarkClusters1000(b *testing.B) {
	snap := benchSnapshot(b, 1000)
	p := gentest.Proxy("10.200.0.1", "bench", map[string]string{"app": "client"})
	sc := snap.Scope(p)
	size := 0
	for _, c := range Build(sc) {
		size += proto.Size(c)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if cs := Build(sc); len(cs) < 1000 {
			b.Fatalf("got %d clusters", len(cs))
		}
	}
	b.ReportMetric(float64(size), "resp-bytes")
}
