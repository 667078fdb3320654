package manager_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/pool"
	"github.com/trellismesh/trellis/internal/xds/gen/cluster"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// svcHost and svcCluster name the service the tests generate.
const (
	svcHost    = "svc.default.svc.cluster.local"
	svcCluster = "outbound|80||" + svcHost
)

// backend is a loopback HTTP server that counts connections and requests
// and can hold requests until released.
type backend struct {
	name string
	ln   net.Listener
	srv  *http.Server

	accepts  atomic.Int64
	closes   atomic.Int64
	requests atomic.Int64
	inflight atomic.Int64
	status   atomic.Int64 // response status; 200 when 0

	mu      sync.Mutex
	hold    chan struct{} // non-nil: requests wait for it to close
	arrived chan struct{} // receives one value per held request
}

// newBackend starts a backend; h2c makes it speak HTTP/2 with prior
// knowledge only.
func newBackend(t testing.TB, name string, h2c bool) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln, arrived: make(chan struct{}, 1000)}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(b.serve),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				b.accepts.Add(1)
			case http.StateClosed, http.StateHijacked:
				b.closes.Add(1)
			}
		},
	}
	if h2c {
		b.srv.Protocols = new(http.Protocols)
		b.srv.Protocols.SetUnencryptedHTTP2(true)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		b.release()
		_ = b.srv.Close()
		<-done
	})
	return b
}

func (b *backend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *backend) addr() string { return b.ln.Addr().String() }

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.requests.Add(1)
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	_, _ = io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	hold := b.hold
	b.mu.Unlock()
	if hold != nil {
		b.arrived <- struct{}{}
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}
	status := int(b.status.Load())
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("X-Proto", r.Proto)
	w.Header().Set("X-User-Agent", strings.Join(r.Header.Values("User-Agent"), ","))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, b.name)
}

// holdRequests makes requests wait until release.
func (b *backend) holdRequests() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hold == nil {
		b.hold = make(chan struct{})
	}
}

func (b *backend) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hold != nil {
		close(b.hold)
		b.hold = nil
	}
}

// waitArrived waits for n held requests to arrive.
func (b *backend) waitArrived(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("backend %s: held request did not arrive", b.name)
		}
	}
}

// serviceYAML is a ServiceEntry for svcHost (port 80, protocol) with one
// static endpoint per backend on 127.0.0.1; extra is appended (a
// DestinationRule, usually).
func serviceYAML(protocol string, backends []*backend, extra string) string {
	var eps strings.Builder
	for _, b := range backends {
		fmt.Fprintf(&eps, "  - {address: 127.0.0.1, ports: {web: %d}}\n", b.port())
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 80, name: web, protocol: %s}
  endpoints:
%s%s`, svcHost, protocol, eps.String(), extra)
}

// rule is a DestinationRule for svcHost with trafficPolicy (indented by
// four spaces).
func rule(trafficPolicy string) string {
	return `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: default}
spec:
  host: ` + svcHost + `
  trafficPolicy:
` + trafficPolicy + "\n"
}

// xds is what the control plane generates for a sidecar from Istio YAML.
type xds struct {
	clusters map[string]*clusterv3.Cluster
	clas     map[string]*endpointv3.ClusterLoadAssignment
}

func generate(t testing.TB, yaml string) xds {
	t.Helper()
	p := gentest.Proxy("10.0.0.1", "default", map[string]string{"app": "client"})
	sc := gentest.NewSnapshot(nil, gentest.YAML(t, yaml)).Scope(p)
	out := xds{clusters: map[string]*clusterv3.Cluster{}, clas: map[string]*endpointv3.ClusterLoadAssignment{}}
	var eds []string
	for _, c := range cluster.Build(sc) {
		out.clusters[c.GetName()] = c
		if c.GetType() == clusterv3.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.GetName()
			}
			eds = append(eds, name)
		}
	}
	for _, cla := range endpoint.Build(sc, eds) {
		out.clas[cla.GetClusterName()] = cla
	}
	return out
}

// startManager runs a manager for the test's duration.
func startManager(t testing.TB, cfg manager.Config) *manager.Manager {
	t.Helper()
	m, err := manager.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return m
}

// apply applies generated xDS and fails on any rejection.
func apply(t testing.TB, m *manager.Manager, x xds) {
	t.Helper()
	if errs := m.ApplyClusters(x.clusters); errs != nil {
		t.Fatalf("ApplyClusters: %v", errs)
	}
	if errs := m.ApplyEndpoints(x.clas); errs != nil {
		t.Fatalf("ApplyEndpoints: %v", errs)
	}
}

// setup starts backends, a manager and applies the generated
// configuration of serviceYAML(protocol, backends, extra).
func setup(t *testing.T, n int, protocol, extra string) (*manager.Manager, []*backend) {
	t.Helper()
	h2c := protocol == "HTTP2" || protocol == "GRPC"
	var bs []*backend
	for i := range n {
		bs = append(bs, newBackend(t, fmt.Sprintf("b%d", i), h2c))
	}
	m := startManager(t, manager.Config{})
	apply(t, m, generate(t, serviceYAML(protocol, bs, extra)))
	return m, bs
}

// result is one request's outcome.
type result struct {
	backend string
	status  int
	info    pool.Info
	err     error
}

// get sends one GET through the manager and reads the whole response.
func get(ctx context.Context, m *manager.Manager, clusterName string, pick router.PickContext) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+svcHost+"/", nil)
	if err != nil {
		return result{err: err}
	}
	resp, info, err := m.Send(ctx, clusterName, pick, req)
	if err != nil {
		return result{info: info, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{backend: string(body), status: resp.StatusCode, info: info, err: err}
}

// mustGet is get that fails the test on error.
func mustGet(t *testing.T, m *manager.Manager, pick router.PickContext) result {
	t.Helper()
	r := get(context.Background(), m, svcCluster, pick)
	if r.err != nil {
		t.Fatalf("request: %v", r.err)
	}
	return r
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// clusterStatus returns the admin view of a cluster.
func clusterStatus(t *testing.T, m *manager.Manager, name string) manager.ClusterStatus {
	t.Helper()
	for _, c := range m.Clusters() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("cluster %s not in the admin view", name)
	return manager.ClusterStatus{}
}

// poolStats sums the pool stats of a cluster's hosts.
func poolStats(t *testing.T, m *manager.Manager, name string) pool.Stats {
	t.Helper()
	var s pool.Stats
	for _, h := range clusterStatus(t, m, name).Hosts {
		for _, p := range h.Pools {
			s.Connections += p.Connections
			s.Pending += p.Pending
			s.Active += p.Active
			s.Idle += p.Idle
			s.ConnectionsTotal += p.ConnectionsTotal
			s.IdleTimeouts += p.IdleTimeouts
			s.MaxRequestsReached += p.MaxRequestsReached
			s.MaxDurationReached += p.MaxDurationReached
			s.ConnectFailures += p.ConnectFailures
		}
	}
	return s
}

func isKind(err error, k pool.Kind) bool {
	var e *manager.Error
	return errors.As(err, &e) && e.Kind == k
}
