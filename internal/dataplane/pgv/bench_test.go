package pgv

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// largest returns the corpus message of type T with the biggest encoding.
func largest[T proto.Message](b *testing.B) T {
	var best T
	size := -1
	for _, m := range corpus(b) {
		if x, ok := m.(T); ok && proto.Size(x) > size {
			best, size = x, proto.Size(x)
		}
	}
	if size < 0 {
		b.Fatal("no such message in the corpus")
	}
	return best
}

func benchmarkValidateAll(b *testing.B, m proto.Message) {
	g := m.(generated)
	b.Run("generated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := g.ValidateAll(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgv", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := ValidateAll(m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkValidateAllCluster compares ValidateAll on the largest
// generated Cluster (an EDS cluster with mTLS transport socket, circuit
// breakers, outlier detection).
func BenchmarkValidateAllCluster(b *testing.B) {
	benchmarkValidateAll(b, largest[*clusterv3.Cluster](b))
}

// BenchmarkValidateAllRouteConfiguration compares ValidateAll on the
// largest generated RouteConfiguration (Bookinfo's outbound HTTP routes).
func BenchmarkValidateAllRouteConfiguration(b *testing.B) {
	benchmarkValidateAll(b, largest[*routev3.RouteConfiguration](b))
}
