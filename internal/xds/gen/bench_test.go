package gen

import (
	"fmt"
	"strings"
	"testing"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// benchConfig declares n services × m endpoints (STATIC, one HTTP port) and
// a VirtualService with a subset split for every tenth service.
func benchConfig(n, m int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc-%d, namespace: bench}
spec:
  hosts: [svc-%d.bench.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: svc-%d}}
`, i, i, i)
		for e := 0; e < m; e++ {
			k := i*m + e
			fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: svc-%d-%d, namespace: bench}
spec: {address: 10.%d.%d.%d, labels: {app: svc-%d, version: v%d}}
`, i, e, 1+k/65536, (k/256)%256, k%256, i, e%2)
		}
		if i%10 == 0 {
			fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-%d, namespace: bench}
spec:
  host: svc-%d
  subsets: [{name: v0, labels: {version: v0}}, {name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc-%d, namespace: bench}
spec:
  hosts: [svc-%d]
  http:
  - route:
    - {destination: {host: svc-%d, subset: v0}, weight: 90}
    - {destination: {host: svc-%d, subset: v1}, weight: 10}
`, i, i, i, i, i, i)
		}
	}
	return b.String()
}

// BenchmarkGenerate1000Services measures, for one sidecar of a mesh of
// 1,000 services × 5 endpoints, the time to generate each xDS type
// (uncached) and the bytes sent to the proxy.
func BenchmarkGenerate1000Services(b *testing.B) {
	snap := gentest.NewSnapshot(nil, gentest.YAML(b, benchConfig(1000, 5)))
	proxy := gentest.Proxy("10.200.0.1", "bench", map[string]string{"app": "client"})

	// The names a proxy subscribes to: every EDS cluster, every RDS route.
	cds, err := Build(snap, proxy, xds.ClusterType, nil)
	if err != nil {
		b.Fatal(err)
	}
	var clusters []string
	for _, r := range cds {
		if _, ok := model.ParseClusterName(r.Name); ok {
			clusters = append(clusters, r.Name)
		}
	}
	types := []struct {
		name    string
		typeURL string
		names   []string
	}{
		{"CDS", xds.ClusterType, nil},
		{"EDS", xds.EndpointType, clusters},
		{"LDS", xds.ListenerType, nil},
		{"RDS", xds.RouteType, []string{"8080"}},
	}
	total := 0
	for _, tc := range types {
		res, err := Build(snap, proxy, tc.typeURL, tc.names)
		if err != nil {
			b.Fatal(err)
		}
		total += size(res)
	}
	for _, tc := range types {
		b.Run(tc.name, func(b *testing.B) {
			var res []xds.Resource
			for b.Loop() {
				if res, err = Build(snap, proxy, tc.typeURL, tc.names); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size(res)), "bytes/proxy")
			b.ReportMetric(float64(len(res)), "resources")
		})
	}
	b.Run("All", func(b *testing.B) {
		for b.Loop() {
			for _, tc := range types {
				if _, err := Build(snap, proxy, tc.typeURL, tc.names); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(total), "bytes/proxy")
	})
	// A second proxy of the same namespace and labels hits the cache.
	b.Run("AllCachedSecondProxy", func(b *testing.B) {
		g := New()
		other := gentest.Proxy("10.200.0.2", "bench", map[string]string{"app": "client"})
		for _, tc := range types {
			if _, err := g.Generate(snap, proxy, tc.typeURL, tc.names); err != nil {
				b.Fatal(err)
			}
		}
		for b.Loop() {
			for _, tc := range types {
				if _, err := g.Generate(snap, other, tc.typeURL, tc.names); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

func size(res []xds.Resource) int {
	n := 0
	for _, r := range res {
		n += len(r.Body.GetValue())
	}
	return n
}
