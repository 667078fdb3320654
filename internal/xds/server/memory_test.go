package server

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/structpb"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

// sharedGen returns the same pre-built resources to every proxy, as the
// real generator does for identical outbound results.
type sharedGen struct {
	cds, eds []xds.Resource
}

func (g *sharedGen) Generate(_ *model.Snapshot, _ *model.Proxy, typeURL string, names []string) ([]xds.Resource, error) {
	switch typeURL {
	case xds.ClusterType:
		return g.cds, nil
	case xds.EndpointType:
		if len(names) != len(g.eds) {
			return nil, fmt.Errorf("subscribed to %d names, want %d", len(names), len(g.eds))
		}
		return g.eds, nil
	}
	return nil, nil
}

// TestPerProxyMemory measures the heap the server retains per connected
// delta proxy subscribed to 1000 clusters and 1000 endpoint sets, all
// shared between proxies. The target is ≤ 100 KB; the assertion is looser
// so that only real regressions fail.
func TestPerProxyMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement")
	}
	const (
		proxies   = 500
		resources = 1000
	)
	gen := &sharedGen{}
	clusterNames := make([]string, resources)
	for k := range resources {
		name := fmt.Sprintf("outbound|8080||svc-%04d.team-%02d.svc.cluster.local", k, k%50)
		clusterNames[k] = name
		c, err := xds.NewResource(name, &cluster.Cluster{Name: name, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS}})
		if err != nil {
			t.Fatal(err)
		}
		e, err := xds.NewResource(name, &endpoint.ClusterLoadAssignment{ClusterName: name,
			Endpoints: []*endpoint.LocalityLbEndpoints{{Locality: &core.Locality{Region: "r1"}}}})
		if err != nil {
			t.Fatal(err)
		}
		gen.cds = append(gen.cds, c)
		gen.eds = append(gen.eds, e)
	}

	srv, err := New(Config{Generator: gen, Debounce: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		srv.Run(ctx)
	}()
	defer func() {
		cancel()
		<-ran
	}()
	srv.Update(snapshot("v1"), PushRequest{Full: true})
	eventually(t, "snapshot", func() bool { return srv.current() != nil })

	t.Run("delta", func(t *testing.T) {
		measure(t, srv, proxies, func(p int) func() {
			fs := newFakeStream[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]()
			served := make(chan error, 1)
			go func() { served <- srv.streamDelta(fs, nil) }()
			first := dreq(xds.ClusterType, "")
			first.Node = memNode(p)
			fs.in <- first
			r := <-fs.out
			if len(r.GetResources()) != resources {
				t.Fatalf("CDS: %d resources", len(r.GetResources()))
			}
			fs.in <- dreq(xds.ClusterType, r.GetNonce())
			// Fresh name strings per proxy, as unmarshalling a request makes.
			sub := dreq(xds.EndpointType, "")
			for _, n := range clusterNames {
				sub.ResourceNamesSubscribe = append(sub.ResourceNamesSubscribe, strings.Clone(n))
			}
			fs.in <- sub
			r = <-fs.out
			if len(r.GetResources()) != resources {
				t.Fatalf("EDS: %d resources", len(r.GetResources()))
			}
			fs.in <- dreq(xds.EndpointType, r.GetNonce())
			return func() { fs.close(); <-served }
		})
	})
	t.Run("sotw", func(t *testing.T) {
		measure(t, srv, proxies, func(p int) func() {
			fs := newFakeStream[discovery.DiscoveryRequest, discovery.DiscoveryResponse]()
			served := make(chan error, 1)
			go func() { served <- srv.streamSotw(fs, nil) }()
			fs.in <- &discovery.DiscoveryRequest{Node: memNode(p), TypeUrl: xds.ClusterType}
			r := <-fs.out
			if len(r.GetResources()) != resources {
				t.Fatalf("CDS: %d resources", len(r.GetResources()))
			}
			fs.in <- ack(r)
			req := &discovery.DiscoveryRequest{TypeUrl: xds.EndpointType}
			for _, n := range clusterNames {
				req.ResourceNames = append(req.ResourceNames, strings.Clone(n))
			}
			fs.in <- req
			r = <-fs.out
			if len(r.GetResources()) != resources {
				t.Fatalf("EDS: %d resources", len(r.GetResources()))
			}
			fs.in <- ack(r, req.ResourceNames...)
			return func() { fs.close(); <-served }
		})
	})
}

// measure connects proxies with connect (which returns a disconnect
// function) and reports the heap retained per proxy.
func measure(t *testing.T, srv *Server, proxies int, connect func(p int) func()) {
	before := memStats()
	closers := make([]func(), proxies)
	for p := range proxies {
		closers[p] = connect(p)
	}
	eventually(t, "all ACKed", func() bool {
		cs := srv.Clients()
		for _, c := range cs {
			for _, ts := range c.Types {
				if !ts.Acked {
					return false
				}
			}
		}
		return len(cs) == proxies
	})
	after := memStats()
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(proxies)
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(proxies)
	t.Logf("per proxy (%d proxies, CDS + EDS of 1000 shared resources each): heap %.1f KB, goroutine stacks %.1f KB",
		proxies, heap/1024, stack/1024)
	if heap > 200*1024 {
		t.Errorf("per-proxy heap %.1f KB exceeds 200 KB", heap/1024)
	}
	for _, c := range closers {
		c()
	}
	eventually(t, "all disconnected", func() bool { return len(srv.Clients()) == 0 })
}

func memStats() runtime.MemStats {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m
}

// memNode is a sidecar node with metadata of a realistic size.
func memNode(p int) *core.Node {
	md, _ := structpb.NewStruct(map[string]any{
		"NAMESPACE":       "team-01",
		"SERVICE_ACCOUNT": "sa-" + fmt.Sprint(p),
		"WORKLOAD_NAME":   "wl-" + fmt.Sprint(p),
		"CLUSTER_ID":      "Kubernetes",
		"ISTIO_VERSION":   "1.31.0",
		"LABELS":          map[string]any{"app": "wl-" + fmt.Sprint(p), "version": "v1"},
	})
	return &core.Node{
		Id:       sidecarID(fmt.Sprintf("10.%d.%d.%d", p>>16&255, p>>8&255, p&255), fmt.Sprint("pod-", p), "team-01"),
		Metadata: md,
	}
}
