package telemetry

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// svcCluster is the outbound EDS cluster of service i, fed by the
// assignment "eds-<i>".
func svcCluster(i int) (string, *clusterv3.Cluster) {
	name := fmt.Sprintf("outbound|9080||svc%d.shop.svc.cluster.local", i)
	return name, &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: fmt.Sprintf("eds-%d", i)}}
}

// services returns the clusters of n services and their assignments, one
// endpoint 10.0.<i/256>.<i%256>:9080 each, of workload svc<i>-<version>.
func services(n int, version string) (xdsset.Set, map[string]*endpointv3.ClusterLoadAssignment) {
	cs := map[string]*clusterv3.Cluster{}
	es := map[string]*endpointv3.ClusterLoadAssignment{}
	for i := range n {
		name, c := svcCluster(i)
		cs[name] = c
		eds := fmt.Sprintf("eds-%d", i)
		es[eds] = assignment(eds, svcIP(i), fmt.Sprintf("svc%d-%s", i, version))
	}
	return xdsset.Of(cs), es
}

func svcIP(i int) string { return fmt.Sprintf("10.0.%d.%d", i/256, i%256) }

// builtMaps returns the clusters whose workload map exists.
func builtMaps(m *Metrics) []string {
	var out []string
	for name, cw := range m.meta.Load().workloads {
		if cw.byHost != nil {
			out = append(out, name)
		}
	}
	return out
}

// TestWorkloadMapsBuiltOnDemand: with many clusters configured, only the
// one traffic goes to gets a workload map; it is kept across updates of
// other clusters and rebuilt when its own endpoints change.
func TestWorkloadMapsBuiltOnDemand(t *testing.T) {
	const n = 50
	m := New(Config{Local: local})
	cs, es := services(n, "v1")
	mustSet(t, m.SetClusters(cs))
	mustSet(t, m.SetEndpoints(xdsset.Of(es)))
	if got := m.workloadMaps.Load(); got != 0 {
		t.Fatalf("%d workload maps built before any traffic, want 0 (built: %v)", got, builtMaps(m))
	}
	if got := len(m.meta.Load().workloads); got != n {
		t.Fatalf("%d clusters with workloads, want %d", got, n)
	}

	target, _ := svcCluster(7)
	host := svcIP(7) + ":9080"
	observe := func(code int) {
		m.Observe(&filter.Record{Listener: "0.0.0.0_9080", Cluster: target, UpstreamHost: host, ResponseCode: code})
	}
	observe(200)
	observe(201)
	// A TCP connection to the same cluster uses the same map.
	o := m.TCP()
	s := &tcp.Session{Cluster: target, Downstream: &listener.Conn{Listener: "0.0.0.0_9080"},
		Upstream: &net.TCPAddr{IP: net.ParseIP(svcIP(7)), Port: 9080}}
	o.Connected(s)
	o.Closed(s)
	// Inbound traffic needs no destination workload of a cluster.
	m.Observe(&filter.Record{Listener: "virtualInbound", Cluster: "inbound|9080||", ResponseCode: 200})
	if got, built := m.workloadMaps.Load(), builtMaps(m); got != 1 || len(built) != 1 || built[0] != target {
		t.Fatalf("after traffic to %s: %d maps built, maps of %v; want 1, of that cluster only", target, got, built)
	}
	body := scrape(t, m.Handler())
	for _, name := range []string{"istio_requests_total", "istio_tcp_connections_opened_total"} {
		if _, _, ok := sample(body, name, map[string]string{"destination_workload": "svc7-v1", "destination_canonical_service": "svc7-v1",
			"destination_workload_namespace": "shop", "destination_canonical_revision": "v1", "destination_service_name": "svc7"}); !ok {
			t.Errorf("%s: no sample with svc7's workload\n%s", name, body)
		}
	}

	// Another cluster's endpoints change: the label cache is dropped, the
	// map of svc7 is kept.
	es["eds-3"] = assignment("eds-3", svcIP(3), "svc3-v2")
	mustSet(t, m.SetEndpoints(xdsset.Of(es)))
	mustSet(t, m.SetClusters(cs))
	observe(202)
	if got := m.workloadMaps.Load(); got != 1 {
		t.Errorf("after an update of another cluster: %d maps built, want still 1", got)
	}

	// svc7's endpoints change: its map is built again, from the new ones.
	es["eds-7"] = assignment("eds-7", svcIP(7), "svc7-v2")
	mustSet(t, m.SetEndpoints(xdsset.Of(es)))
	observe(203)
	if got := m.workloadMaps.Load(); got != 2 {
		t.Errorf("after an update of %s: %d maps built, want 2", target, got)
	}
	body = scrape(t, m.Handler())
	if _, _, ok := sample(body, "istio_requests_total", map[string]string{"response_code": "203", "destination_workload": "svc7-v2"}); !ok {
		t.Errorf("request after svc7's update: want destination_workload svc7-v2\n%s", body)
	}
}

// TestClusterWorkloadSources: a cluster's workloads come from its inline
// load_assignment and its EDS assignment, the assignment winning for an
// address both list; a host neither lists is unknown.
func TestClusterWorkloadSources(t *testing.T) {
	name, c := svcCluster(1)
	inline := assignment(name, "10.0.0.1", "inline-a")
	inline.Endpoints = append(inline.Endpoints, assignment(name, "10.0.0.2", "inline-b").Endpoints...)
	c.LoadAssignment = inline
	m := New(Config{Local: local})
	mustSet(t, m.SetClusters(xdsset.Of(map[string]*clusterv3.Cluster{name: c})))
	md := m.meta.Load()
	for host, want := range map[string]string{"10.0.0.1:9080": "inline-a", "10.0.0.2:9080": "inline-b", "10.0.0.3:9080": ""} {
		if got := workloadOf(md, name, host).Name; got != want {
			t.Errorf("inline only: %s is %q, want %q", host, got, want)
		}
	}
	eds := assignment("eds-1", "10.0.0.2", "eds-b")
	eds.Endpoints = append(eds.Endpoints, assignment("eds-1", "10.0.0.3", "eds-c").Endpoints...)
	mustSet(t, m.SetEndpoints(xdsset.Of(map[string]*endpointv3.ClusterLoadAssignment{"eds-1": eds})))
	md = m.meta.Load()
	for host, want := range map[string]string{"10.0.0.1:9080": "inline-a", "10.0.0.2:9080": "eds-b", "10.0.0.3:9080": "eds-c", "10.0.0.4:9080": ""} {
		if got := workloadOf(md, name, host).Name; got != want {
			t.Errorf("inline and EDS: %s is %q, want %q", host, got, want)
		}
	}
}

// TestObserveDuringUpdates: requests are observed on many goroutines
// while CDS and EDS updates replace the metadata (run with -race). Every
// request is counted, and every destination workload reported is one the
// endpoint had in some update, or unknown while it had none.
func TestObserveDuringUpdates(t *testing.T) {
	const (
		n       = 20
		workers = 8
		perG    = 2000
		updates = 50
	)
	m := New(Config{Local: local})
	cs, es1 := services(n, "v1")
	_, es2 := services(n, "v2")
	mustSet(t, m.SetClusters(cs))
	mustSet(t, m.SetEndpoints(xdsset.Of(es1)))

	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for u := range updates {
			es := es1
			switch u % 3 {
			case 1:
				es = es2
			case 2:
				// Half the assignments gone: their workloads are unknown.
				es = map[string]*endpointv3.ClusterLoadAssignment{}
				for i := 0; i < n; i += 2 {
					eds := "eds-" + strconv.Itoa(i)
					es[eds] = es1[eds]
				}
			}
			if err := m.SetEndpoints(xdsset.Of(es)); err != nil {
				t.Error(err)
				return
			}
			if err := m.SetClusters(cs); err != nil {
				t.Error(err)
				return
			}
			runtime.Gosched()
		}
	}()
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := m.TCP()
			for r := range perG {
				i := (g + r) % n
				name, _ := svcCluster(i)
				m.Observe(&filter.Record{Listener: "0.0.0.0_9080", Cluster: name, UpstreamHost: svcIP(i) + ":9080", ResponseCode: 200})
				if r%10 == 0 {
					s := &tcp.Session{Cluster: name, Downstream: &listener.Conn{Listener: "0.0.0.0_9080"},
						Upstream: &net.TCPAddr{IP: net.ParseIP(svcIP(i)), Port: 9080}}
					o.Connected(s)
					o.Closed(s)
				}
			}
		}()
	}
	wg.Wait()
	<-done

	body := scrape(t, m.Handler())
	total := 0
	for i := range n {
		name, _ := svcCluster(i)
		// Only the workloads the endpoint had are summed: a request
		// reported with any other is missing from the total.
		allowed := []string{fmt.Sprintf("svc%d-v1", i), fmt.Sprintf("svc%d-v2", i)}
		if i%2 == 1 {
			allowed = append(allowed, Unknown)
		}
		for _, w := range allowed {
			v, _, ok := sample(body, "istio_requests_total", map[string]string{"destination_service_name": fmt.Sprintf("svc%d", i), "destination_workload": w})
			if !ok {
				continue
			}
			c, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: istio_requests_total %q: %v", name, v, err)
			}
			total += c
		}
	}
	if total != workers*perG {
		t.Errorf("%d requests counted, want %d\n%s", total, workers*perG, body)
	}
}

// TestHostsEncoding: what endpointHosts keeps reads back as the workloads
// by host the assignment gave, whatever the addresses, the values' sizes
// and how replicas interleave.
func TestHostsEncoding(t *testing.T) {
	long := strings.Repeat("w", 300) // a length over one varint byte
	for _, tc := range []struct {
		name  string
		eps   [][2]string // ip, istio.workload ("" for none)
		want  map[string]string
		count int // distinct *Workload values read
	}{
		{name: "none", eps: [][2]string{{"10.0.0.1", ""}}, want: map[string]string{}},
		{name: "replicas share", eps: [][2]string{{"10.0.0.1", "a"}, {"10.0.0.2", "a"}, {"10.0.0.3", "b"}, {"10.0.0.4", "a"}},
			want: map[string]string{"10.0.0.1:9080": "a", "10.0.0.2:9080": "a", "10.0.0.3:9080": "b", "10.0.0.4:9080": "a"}, count: 2},
		{name: "ipv6 and hostnames", eps: [][2]string{{"fd00::1", "a"}, {"fe80::1%eth0", "b"}, {"reviews.shop", "c"}},
			want: map[string]string{"[fd00::1]:9080": "a", "[fe80::1%eth0]:9080": "b"}, count: 2},
		{name: "long value", eps: [][2]string{{"10.0.0.1", long}, {"10.0.0.2", long}},
			want: map[string]string{"10.0.0.1:9080": long, "10.0.0.2:9080": long}, count: 1},
		{name: "same address twice: the later wins", eps: [][2]string{{"10.0.0.1", "a"}, {"10.0.0.1", "b"}},
			want: map[string]string{"10.0.0.1:9080": "b"}, count: 2},
		{name: "beyond the window: written again", eps: func() [][2]string {
			var eps [][2]string
			for i := range refWindow + 2 {
				eps = append(eps, [2]string{fmt.Sprintf("10.0.1.%d", i), fmt.Sprintf("w%d", i)})
			}
			return append(eps, [2]string{"10.0.2.1", "w0"}, [2]string{"10.0.2.2", "w0"}, [2]string{"10.0.2.3", fmt.Sprintf("w%d", refWindow+1)})
		}(), want: func() map[string]string {
			m := map[string]string{"10.0.2.1:9080": "w0", "10.0.2.2:9080": "w0", "10.0.2.3:9080": fmt.Sprintf("w%d", refWindow+1)}
			for i := range refWindow + 2 {
				m[fmt.Sprintf("10.0.1.%d:9080", i)] = fmt.Sprintf("w%d", i)
			}
			return m
		}(), count: refWindow + 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c"}
			for _, ep := range tc.eps {
				a := assignment("c", ep[0], "x")
				lbe := a.Endpoints[0].LbEndpoints[0]
				if ep[1] == "" {
					lbe.Metadata = nil
				} else {
					lbe.Metadata.FilterMetadata["istio"].Fields["workload"] = structpb.NewStringValue(ep[1])
				}
				cla.Endpoints = append(cla.Endpoints, a.Endpoints...)
			}
			h := endpointHosts(decoded(t, cla))
			got := map[string]string{}
			distinct := map[*Workload]bool{}
			h.each(func(host string, w *Workload) {
				got[host] = w.Name
				distinct[w] = true
			})
			if !maps.Equal(got, tc.want) {
				t.Errorf("workloads %v, want %v", got, tc.want)
			}
			if len(distinct) != tc.count {
				t.Errorf("%d distinct workloads read, want %d", len(distinct), tc.count)
			}
			cw := &clusterWorkloads{sources: []hosts{h}}
			for host, name := range tc.want {
				if w := cw.lookup(host, new(atomic.Int64)); w.Name != name {
					t.Errorf("lookup(%s) = %q, want %q", host, w.Name, name)
				}
			}
		})
	}
}

// FuzzHosts: reading hosts never panics, whatever the bytes, and what
// endpointHosts writes always reads back whole.
func FuzzHosts(f *testing.F) {
	f.Add("10.0.0.1", "a;shop;a;v1;", uint16(80))
	f.Add("fd00::1", strings.Repeat("x", 200), uint16(9080))
	f.Fuzz(func(t *testing.T, ip, value string, port uint16) {
		hosts(ip + value).each(func(string, *Workload) {})
		cla := assignment("c", ip, "x")
		cla.Endpoints[0].LbEndpoints[0].GetEndpoint().GetAddress().GetSocketAddress().PortSpecifier =
			&corev3.SocketAddress_PortValue{PortValue: uint32(port)}
		cla.Endpoints[0].LbEndpoints[0].Metadata.FilterMetadata["istio"].Fields["workload"] = structpb.NewStringValue(value)
		cla.Endpoints = append(cla.Endpoints, cla.Endpoints[0])
		n := 0
		endpointHosts(cla).each(func(host string, w *Workload) {
			n++
			if *w != parseWorkload(value) {
				t.Errorf("workload %+v, want %+v", *w, parseWorkload(value))
			}
		})
		if _, err := netip.ParseAddr(ip); err == nil && value != "" && n != 2 {
			t.Errorf("%d endpoints read back (ip %q, value %q), want 2", n, ip, value)
		}
	})
}
