package manager_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
)

// TestClusterRemovalDrains: a removed cluster refuses new requests (NC)
// and lets its in-flight request finish before closing the connection.
func TestClusterRemovalDrains(t *testing.T) {
	b := newBackend(t, "b0", false)
	m := startManager(t, manager.Config{})
	x := generate(t, serviceYAML("HTTP", []*backend{b}, ""))
	apply(t, m, x)
	b.holdRequests()
	done := make(chan result, 1)
	go func() { done <- get(context.Background(), m, svcCluster, router.PickContext{}) }()
	b.waitArrived(t, 1)

	rest := map[string]*clusterv3.Cluster{}
	for name, c := range x.clusters {
		if name != svcCluster {
			rest[name] = c
		}
	}
	if errs := m.ApplyClusters(rest); errs != nil {
		t.Fatal(errs)
	}
	if r := get(context.Background(), m, svcCluster, router.PickContext{}); !errors.Is(r.err, router.ErrNoCluster) {
		t.Errorf("request to a removed cluster: %v", r.err)
	}
	if slices.Contains(m.EDSNames(), svcCluster) {
		t.Error("removed cluster still subscribed over EDS")
	}
	if b.closes.Load() != 0 {
		t.Fatal("in-flight request's connection closed")
	}
	b.release()
	if r := <-done; r.err != nil || r.status != http.StatusOK || r.backend != "b0" {
		t.Fatalf("in-flight request: %+v", r)
	}
	eventually(t, "the drained connection closed", func() bool { return b.closes.Load() == 1 })
}

// TestEndpointRemovalDrains: a host that leaves the assignment has its
// idle connections closed; the remaining host keeps its connection.
func TestEndpointRemovalDrains(t *testing.T) {
	bs := []*backend{newBackend(t, "b0", false), newBackend(t, "b1", false)}
	m := startManager(t, manager.Config{})
	apply(t, m, generate(t, serviceYAML("HTTP", bs, rule(`    loadBalancer: {simple: ROUND_ROBIN}`))))
	for range 4 {
		mustGet(t, m, router.PickContext{})
	}
	apply(t, m, generate(t, serviceYAML("HTTP", bs[:1], rule(`    loadBalancer: {simple: ROUND_ROBIN}`))))
	eventually(t, "the removed host's connection closed", func() bool { return bs[1].closes.Load() == 1 })
	for range 4 {
		if r := mustGet(t, m, router.PickContext{}); r.backend != "b0" {
			t.Fatalf("request went to %s", r.backend)
		}
	}
	if bs[0].accepts.Load() != 1 || bs[0].closes.Load() != 0 {
		t.Errorf("remaining host: %d accepts, %d closes", bs[0].accepts.Load(), bs[0].closes.Load())
	}
}

// TestWarming: an EDS cluster has no hosts until its assignment arrives;
// a rejected assignment keeps the previous hosts.
func TestWarming(t *testing.T) {
	b := newBackend(t, "b0", false)
	m := startManager(t, manager.Config{})
	x := generate(t, serviceYAML("HTTP", []*backend{b}, ""))
	if errs := m.ApplyClusters(x.clusters); errs != nil {
		t.Fatal(errs)
	}
	if !clusterStatus(t, m, svcCluster).Warming || !slices.Contains(m.EDSNames(), svcCluster) {
		t.Error("EDS cluster not warming")
	}
	if r := get(context.Background(), m, svcCluster, router.PickContext{}); !errors.Is(r.err, router.ErrNoHealthyUpstream) {
		t.Errorf("warming cluster: %v", r.err)
	}
	if errs := m.ApplyEndpoints(map[string]*endpointv3.ClusterLoadAssignment{svcCluster: x.clas[svcCluster]}); errs != nil {
		t.Fatal(errs)
	}
	if clusterStatus(t, m, svcCluster).Warming {
		t.Error("still warming")
	}
	mustGet(t, m, router.PickContext{})

	bad := proto.Clone(x.clas[svcCluster]).(*endpointv3.ClusterLoadAssignment)
	bad.ClusterName = "other"
	errs := m.ApplyEndpoints(map[string]*endpointv3.ClusterLoadAssignment{svcCluster: bad})
	if errs[svcCluster] == nil {
		t.Error("mismatched cluster_name accepted")
	}
	mustGet(t, m, router.PickContext{})

	// A cluster that comes back gets the cached assignment at once.
	if errs := m.ApplyClusters(x.clusters); errs != nil {
		t.Fatal(errs)
	}
	mustGet(t, m, router.PickContext{})
}

// TestRejectedClusterKeepsPreviousVersion: one bad cluster is NACKed
// alone; a rejected update leaves the previous version serving.
func TestRejectedClusterKeepsPreviousVersion(t *testing.T) {
	m, _ := setup(t, 1, "HTTP", "")
	x := generate(t, serviceYAML("HTTP", []*backend{newBackend(t, "b9", false)}, ""))
	bad := proto.Clone(x.clusters[svcCluster]).(*clusterv3.Cluster)
	bad.LbSubsetConfig = &clusterv3.Cluster_LbSubsetConfig{}
	x.clusters[svcCluster] = bad
	x.clusters["mismatch"] = x.clusters[cluster.BlackHoleCluster]
	errs := m.ApplyClusters(x.clusters)
	if len(errs) != 2 || errs[svcCluster] == nil || errs["mismatch"] == nil {
		t.Fatalf("errors %v, want the subset cluster and the misnamed one", errs)
	}
	if !strings.Contains(errs[svcCluster].Error(), "lb_subset_config") {
		t.Errorf("error %q does not name the field", errs[svcCluster])
	}
	if r := mustGet(t, m, router.PickContext{}); r.backend != "b0" {
		t.Errorf("previous version should still serve b0, got %s", r.backend)
	}
}

// TestSettingsChangeKeepsHosts: a change of connection settings only
// (idleTimeout) keeps the Instance — an ejected host stays ejected; a
// change of circuit breakers builds a new one.
func TestSettingsChangeKeepsHosts(t *testing.T) {
	bs := []*backend{newBackend(t, "b0", false), newBackend(t, "b1", false), newBackend(t, "b2", false)}
	policy := func(extra string) string {
		return rule(`    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1h, baseEjectionTime: 1h, maxEjectionPercent: 100}
    connectionPool:` + extra)
	}
	m := startManager(t, manager.Config{})
	apply(t, m, generate(t, serviceYAML("HTTP", bs, policy(`
      http: {idleTimeout: 1h}`))))
	bs[1].status.Store(http.StatusServiceUnavailable)
	for bs[1].requests.Load() < 2 {
		mustGet(t, m, router.PickContext{})
	}
	ejected := func() bool {
		for _, h := range clusterStatus(t, m, svcCluster).Hosts {
			if h.Address == bs[1].addr() {
				return h.Outlier.Ejected
			}
		}
		t.Fatal("host missing")
		return false
	}
	if !ejected() {
		t.Fatal("host not ejected")
	}
	apply(t, m, generate(t, serviceYAML("HTTP", bs, policy(`
      http: {idleTimeout: 2h}`))))
	if !ejected() {
		t.Error("a settings-only change lost the outlier state")
	}
	apply(t, m, generate(t, serviceYAML("HTTP", bs, policy(`
      http: {idleTimeout: 2h}
      tcp: {maxConnections: 10}`))))
	if ejected() {
		t.Error("a new Instance kept the ejection (documented otherwise)")
	}
	mustGet(t, m, router.PickContext{})
}

// TestTLSNeverFallsBackToPlaintext: endpoints that need TLS fail to
// connect with a clear error (and do not count against outlier
// detection); plaintext endpoints of the same cluster work.
func TestTLSNeverFallsBackToPlaintext(t *testing.T) {
	t.Run("ISTIO_MUTUAL", func(t *testing.T) {
		m, bs := setup(t, 1, "HTTP", rule(`    tls: {mode: ISTIO_MUTUAL}
    outlierDetection: {consecutive5xxErrors: 1}`))
		for range 3 {
			r := get(context.Background(), m, svcCluster, router.PickContext{})
			if !errors.Is(r.err, router.ErrConnectFailure) || !errors.Is(r.err, pool.ErrUnsupportedTransport) {
				t.Fatalf("error %v", r.err)
			}
			if !strings.Contains(r.err.Error(), "refusing to fall back to plaintext") {
				t.Errorf("unclear error: %v", r.err)
			}
		}
		if bs[0].accepts.Load() != 0 {
			t.Error("a plaintext connection was made")
		}
		h := clusterStatus(t, m, svcCluster).Hosts[0]
		if h.Outlier.Ejected || h.Outlier.Consecutive5xx != 0 {
			t.Errorf("configuration error held against the host: %+v", h.Outlier)
		}
		if !strings.HasSuffix(h.Transport, "unsupported") {
			t.Errorf("admin transport %q", h.Transport)
		}
		if _, err := m.Dial(context.Background(), svcCluster, nil); !errors.Is(err, pool.ErrUnsupportedTransport) {
			t.Errorf("Dial: %v", err)
		}
	})
	t.Run("auto mTLS per endpoint", func(t *testing.T) {
		plain, meshed := newBackend(t, "plain", false), newBackend(t, "meshed", false)
		yaml := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: web, protocol: HTTP}
  endpoints:
  - {address: 127.0.0.1, ports: {web: %d}}
  - {address: 127.0.0.1, ports: {web: %d}, labels: {security.istio.io/tlsMode: istio}}
%s`, svcHost, plain.port(), meshed.port(), rule(`    loadBalancer: {simple: ROUND_ROBIN}`))
		m := startManager(t, manager.Config{})
		apply(t, m, generate(t, yaml))
		var ok, refused int
		for range 10 {
			r := get(context.Background(), m, svcCluster, router.PickContext{})
			switch {
			case r.err == nil && r.backend == "plain":
				ok++
			case errors.Is(r.err, pool.ErrUnsupportedTransport):
				refused++
			default:
				t.Fatalf("unexpected %+v", r)
			}
		}
		if ok != 5 || refused != 5 || meshed.accepts.Load() != 0 {
			t.Errorf("ok %d refused %d, meshed accepts %d", ok, refused, meshed.accepts.Load())
		}
	})
}

// fakeResolver answers DNS lookups from a map.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
}

func (r *fakeResolver) set(name string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	r.answers[name] = out
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, name string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.answers[name]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return a, nil
}

// TestDNSCluster: a DNS ServiceEntry is a STRICT_DNS cluster, warming
// until its name resolves.
func TestDNSCluster(t *testing.T) {
	b := newBackend(t, "dns", false)
	res := &fakeResolver{answers: map[string][]netip.Addr{}}
	m := startManager(t, manager.Config{Resolver: res})
	yaml := fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: default}
spec:
  hosts: [api.example.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {number: %d, name: web, protocol: HTTP}
`, b.port())
	x := generate(t, yaml)
	name := fmt.Sprintf("outbound|%d||api.example.test", b.port())
	if x.clusters[name].GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Fatalf("cluster %s: %v", name, x.clusters[name].GetType())
	}
	apply(t, m, x)
	eventually(t, "the failed first resolution", func() bool { return !clusterStatus(t, m, name).Warming })
	if r := get(context.Background(), m, name, router.PickContext{}); !errors.Is(r.err, router.ErrNoHealthyUpstream) {
		t.Errorf("unresolved: %v", r.err)
	}
	res.set("api.example.test", "127.0.0.1")
	// Refresh after the (default 5s) failure back-off is too slow for a
	// test: re-apply a changed cluster, which resolves at once.
	c := proto.Clone(x.clusters[name]).(*clusterv3.Cluster)
	c.DnsRefreshRate = nil
	c.RespectDnsTtl = false
	if errs := m.ApplyClusters(map[string]*clusterv3.Cluster{name: c}); errs != nil {
		t.Fatal(errs)
	}
	eventually(t, "the resolved host", func() bool {
		r := get(context.Background(), m, name, router.PickContext{})
		return r.err == nil && r.backend == "dns"
	})
}
