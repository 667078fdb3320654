package benchmesh

import (
	"fmt"
	"strings"
)

// Services returns the YAML of n services with endpoints WorkloadEntries
// each: ServiceEntry svc-<i> (host svc-<i>.bench.svc.cluster.local,
// STATIC, selecting app: svc-<i>) and WorkloadEntries svc-<i>-<e>
// (labels app: svc-<i>, version: v0/v1 alternating).
func Services(n, endpoints int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: svc-%d
  namespace: bench
spec:
  hosts: [svc-%d.bench.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  resolution: STATIC
  workloadSelector:
    labels: {app: svc-%d}
`, i, i, i)
		for e := range endpoints {
			k := i*endpoints + e
			fmt.Fprintf(&b, `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: svc-%d-%d
  namespace: bench
spec:
  address: 10.%d.%d.%d
  labels: {app: svc-%d, version: v%d}
`, i, e, 1+k/65536, (k/256)%256, k%256, i, e%2)
		}
	}
	return b.String()
}
