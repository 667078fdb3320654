package upstream_test

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// The tests feed the package what the control plane generates from Istio
// configuration: CDS and EDS resources of a sidecar.

// reviewsService is a ServiceEntry for reviews with three endpoints (port
// 9080, declared HTTP) in two zones; DestinationRules are appended.
const reviewsService = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  endpoints:
  - {address: 10.1.0.1, locality: us-east/zone1, labels: {version: v1}}
  - {address: 10.1.0.2, locality: us-east/zone1, labels: {version: v2}}
  - {address: 10.1.0.3, locality: us-east/zone2, labels: {version: v3}}
`

const reviewsCluster = "outbound|9080||reviews.default.svc.cluster.local"

// generated is the xDS a sidecar receives for some configuration.
type generated struct {
	clusters []*clusterv3.Cluster
	eds      func(names ...string) []*endpointv3.ClusterLoadAssignment
}

// generate runs the control plane's generators for a sidecar at 10.0.0.1
// in namespace default, in locality (may be empty), over yaml.
func generate(t *testing.T, yaml, locality string) generated {
	t.Helper()
	cfgs := gentest.YAML(t, yaml)
	p := gentest.Proxy("10.0.0.1", "default", map[string]string{"app": "productpage", "version": "v1"})
	p.Locality = locality
	sc := gentest.NewSnapshot(nil, cfgs).Scope(p)
	cs := cluster.Build(sc)
	for _, c := range cs {
		if err := c.ValidateAll(); err != nil {
			t.Fatalf("generator produced an invalid cluster %s: %v", c.GetName(), err)
		}
	}
	return generated{
		clusters: cs,
		eds:      func(names ...string) []*endpointv3.ClusterLoadAssignment { return endpoint.Build(sc, names) },
	}
}

func (g generated) cluster(t *testing.T, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range g.clusters {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("no cluster %q generated", name)
	return nil
}

func (g generated) cla(t *testing.T, name string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	clas := g.eds(name)
	if len(clas) != 1 {
		t.Fatalf("EDS for %s: %d assignments", name, len(clas))
	}
	return clas[0]
}
