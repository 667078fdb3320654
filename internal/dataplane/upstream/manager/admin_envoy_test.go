package manager_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/google/go-cmp/cmp"

	"github.com/trellismesh/trellis/internal/cli/proxyconfig"
	"github.com/trellismesh/trellis/internal/dataplane/http/router"
	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/outlier"
)

// ejectedCluster runs the generated cluster of two backends with outlier
// detection ejecting at the first 5xx, makes the second backend fail,
// sends requests until it answered one 500 and waits for its ejection. It
// returns the cluster's admin view, the backends' addresses and the
// requests each got.
func ejectedCluster(t *testing.T) (c manager.ClusterStatus, good, bad string, goodRq, badRq int) {
	t.Helper()
	m, bs := setup(t, 2, "HTTP", rule(`    outlierDetection: {consecutive5xxErrors: 1, interval: 1h, baseEjectionTime: 1h, maxEjectionPercent: 100}`))
	bs[1].status.Store(500)
	got := map[string]int{}
	for i := 0; got[bs[1].name] == 0; i++ {
		if i == 100 {
			t.Fatalf("100 requests never reached the failing backend: %v", got)
		}
		got[mustGet(t, m, router.PickContext{}).backend]++
	}
	eventually(t, "the failing backend's ejection", func() bool {
		c = clusterStatus(t, m, svcCluster)
		return c.Outlier.Active == 1
	})
	if len(c.Hosts) != 2 || c.Hosts[0].Address != bs[0].addr() || c.Hosts[1].Address != bs[1].addr() {
		t.Fatalf("hosts %+v, want %s then %s", c.Hosts, bs[0].addr(), bs[1].addr())
	}
	return c, bs[0].addr(), bs[1].addr(), got[bs[0].name], got[bs[1].name]
}

// readEnvoyJSON reads the JSON form into envoy.admin.v3.Clusters
// (unknown fields are errors) and checks that it is that message's
// canonical JSON as Envoy prints it: what protojson writes with the proto
// field names, compared as JSON values (field order and spacing aside).
func readEnvoyJSON(t *testing.T, b []byte) *adminv3.Clusters {
	t.Helper()
	var msg adminv3.Clusters
	if err := protojson.Unmarshal(b, &msg); err != nil {
		t.Fatalf("protojson: %v\n%s", err, b)
	}
	canonical, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(&msg)
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(canonical, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("not the canonical JSON of envoy.admin.v3.Clusters (-canonical +got):\n%s", diff)
	}
	return &msg
}

// TestEnvoyText checks the text form of /clusters, line for line, for a
// cluster of two hosts, the second ejected by outlier detection.
func TestEnvoyText(t *testing.T) {
	c, good, bad, goodRq, badRq := ejectedCluster(t)
	var b bytes.Buffer
	if err := manager.WriteEnvoyText(&b, []manager.ClusterStatus{c}); err != nil {
		t.Fatal(err)
	}

	var want strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&want, svcCluster+"::"+format+"\n", args...) }
	line("observability_name::%s", svcCluster)
	// Istio's thresholds for the default priority, Envoy's defaults for
	// the high one.
	for _, l := range []string{
		"default_priority::max_connections::4294967295",
		"default_priority::max_pending_requests::4294967295",
		"default_priority::max_requests::4294967295",
		"default_priority::max_retries::4294967295",
		"high_priority::max_connections::1024",
		"high_priority::max_pending_requests::1024",
		"high_priority::max_requests::1024",
		"high_priority::max_retries::3",
		"added_via_api::true",
		"eds_service_name::" + svcCluster,
	} {
		line("%s", l)
	}
	for _, h := range []struct {
		addr   string
		rq     int
		health string
	}{{good, goodRq, "healthy"}, {bad, badRq, "/failed_outlier_check"}} {
		cx := min(h.rq, 1) // sequential requests share one kept-alive connection
		line("%s::cx_active::%d", h.addr, cx)
		line("%s::cx_connect_fail::0", h.addr)
		line("%s::cx_total::%d", h.addr, cx)
		line("%s::rq_active::0", h.addr)
		line("%s::rq_total::%d", h.addr, h.rq)
		line("%s::hostname::", h.addr)
		line("%s::health_flags::%s", h.addr, h.health)
		line("%s::weight::1", h.addr)
		line("%s::region::", h.addr)
		line("%s::zone::", h.addr)
		line("%s::sub_zone::", h.addr)
		line("%s::canary::false", h.addr)
		line("%s::priority::0", h.addr)
		line("%s::success_rate::-1", h.addr)
		line("%s::local_origin_success_rate::-1", h.addr)
	}
	if diff := cmp.Diff(strings.Split(want.String(), "\n"), strings.Split(b.String(), "\n")); diff != "" {
		t.Errorf("text form (-want +got):\n%s\ngot:\n%s", diff, b.String())
	}
}

// TestEnvoyJSON checks the JSON form of /clusters: Envoy's proto field
// names, the message read back by protojson, and istioctl-style parsing
// by proxyconfig.ParseAdminClusters.
func TestEnvoyJSON(t *testing.T) {
	c, good, bad, goodRq, badRq := ejectedCluster(t)
	b, err := manager.EnvoyJSON([]manager.ClusterStatus{c})
	if err != nil {
		t.Fatal(err)
	}
	// Envoy's admin JSON keeps the proto field names; protojson would
	// read the lowerCamelCase ones too, so look at the bytes.
	for _, name := range []string{"cluster_statuses", "observability_name", "eds_service_name", "added_via_api", "circuit_breakers",
		"max_connections", "host_statuses", "socket_address", "port_value", "health_status", "eds_health_status", "failed_outlier_check"} {
		if !bytes.Contains(b, []byte(`"`+name+`"`)) {
			t.Errorf("no %q in\n%s", name, b)
		}
	}
	if bytes.Contains(b, []byte(`"clusterStatuses"`)) || bytes.Contains(b, []byte(`"hostStatuses"`)) {
		t.Errorf("lowerCamelCase field names in\n%s", b)
	}

	got := readEnvoyJSON(t, b)
	hostStatus := func(addr string, rq int, ejected bool) *adminv3.HostStatus {
		ip, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.ParseUint(port, 10, 32)
		cx := uint64(min(rq, 1))
		return &adminv3.HostStatus{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)},
			}}},
			Stats: []*adminv3.SimpleMetric{
				{Name: "cx_connect_fail", Type: adminv3.SimpleMetric_COUNTER},
				{Name: "cx_total", Value: cx, Type: adminv3.SimpleMetric_COUNTER},
				{Name: "rq_total", Value: uint64(rq), Type: adminv3.SimpleMetric_COUNTER},
				{Name: "cx_active", Value: cx, Type: adminv3.SimpleMetric_GAUGE},
				{Name: "rq_active", Type: adminv3.SimpleMetric_GAUGE},
			},
			HealthStatus: &adminv3.HostHealthStatus{EdsHealthStatus: corev3.HealthStatus_HEALTHY, FailedOutlierCheck: ejected},
			Weight:       1,
			Locality:     &corev3.Locality{},
		}
	}
	thresholds := func(prio corev3.RoutingPriority, cx, pending, rq, retries uint32) *clusterv3.CircuitBreakers_Thresholds {
		return &clusterv3.CircuitBreakers_Thresholds{Priority: prio, MaxConnections: wrapperspb.UInt32(cx),
			MaxPendingRequests: wrapperspb.UInt32(pending), MaxRequests: wrapperspb.UInt32(rq), MaxRetries: wrapperspb.UInt32(retries)}
	}
	const unlimited = 4294967295
	want := &adminv3.Clusters{ClusterStatuses: []*adminv3.ClusterStatus{{
		Name:              svcCluster,
		ObservabilityName: svcCluster,
		EdsServiceName:    svcCluster,
		AddedViaApi:       true,
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
			thresholds(corev3.RoutingPriority_DEFAULT, unlimited, unlimited, unlimited, unlimited),
			thresholds(corev3.RoutingPriority_HIGH, 1024, 1024, 1024, 3),
		}},
		HostStatuses: []*adminv3.HostStatus{hostStatus(good, goodRq, false), hostStatus(bad, badRq, true)},
	}}}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}

	rows, err := proxyconfig.ParseAdminClusters(b)
	if err != nil {
		t.Fatalf("ParseAdminClusters: %v", err)
	}
	var lines []string
	for _, r := range proxyconfig.EndpointTable(rows, proxyconfig.Filter{}).Rows {
		lines = append(lines, strings.Join(r, " "))
	}
	wantRows := []string{good + " HEALTHY OK " + svcCluster, bad + " HEALTHY FAILED " + svcCluster}
	if good > bad { // the table sorts by endpoint
		wantRows[0], wantRows[1] = wantRows[1], wantRows[0]
	}
	if diff := cmp.Diff(wantRows, lines); diff != "" {
		t.Errorf("proxy-config endpoints rows (-want +got):\n%s", diff)
	}
}

// TestEnvoyForms checks the renderings of hand-made statuses: health
// flags in Envoy's order, EDS statuses, host order by priority, address
// kinds, localities, success rates, alt_stat_name and clusters without an
// EDS service name or hosts.
func TestEnvoyForms(t *testing.T) {
	limits := func(cx, pending, rq, retries uint64) circuit.Stats {
		var s circuit.Stats
		s.Max[circuit.Connections], s.Max[circuit.PendingRequests], s.Max[circuit.Requests], s.Max[circuit.Retries] = cx, pending, rq, retries
		s.Max[circuit.ConnectionPools] = circuit.Unlimited
		return s
	}
	monitored := func(sr, local float64, ejected bool) outlier.State {
		return outlier.State{Label: "x", SuccessRate: sr, LocalOriginSuccessRate: local, Ejected: ejected}
	}
	clusters := []manager.ClusterStatus{
		{
			Name: "static", ObservabilityName: "alt", Type: upstream.Static,
			Breakers: [circuit.NumPriorities]circuit.Stats{limits(1, 2, 3, 4), limits(5, 6, 7, circuit.Unlimited)},
			Hosts: []manager.HostStatus{
				{HostStatus: upstream.HostStatus{Address: "[fd00::1]:8080", Addr: host.Address{IP: netip.MustParseAddr("fd00::1"), Port: 8080}, Hostname: "h1", Weight: 3, Priority: 1,
					Locality: host.Locality{Region: "r", Zone: "z", SubZone: "s"}, EDSHealth: corev3.HealthStatus_UNHEALTHY,
					Outlier: monitored(50, 99.5, true), HostCounters: upstream.HostCounters{RqActive: -1, CxActive: 2, CxTotal: 7, RqTotal: 9, CxConnectFail: 4}}},
				{HostStatus: upstream.HostStatus{Address: "10.0.0.2:80", Addr: host.Address{IP: netip.MustParseAddr("10.0.0.2"), Port: 80}, Weight: 1, EDSHealth: corev3.HealthStatus_DEGRADED,
					Outlier: monitored(-1, 100, false)}},
				{HostStatus: upstream.HostStatus{Address: "/run/app.sock", Addr: host.Address{Kind: host.Pipe, Path: "/run/app.sock"}, Weight: 1, EDSHealth: corev3.HealthStatus_DRAINING}},
				{HostStatus: upstream.HostStatus{Address: "envoy://connect_originate/10.0.0.3:80",
					Addr: host.Address{Kind: host.Internal, ServerListener: "connect_originate", EndpointID: "10.0.0.3:80"}, Weight: 1, EDSHealth: corev3.HealthStatus_TIMEOUT}},
			},
		},
		{Name: "warming", ObservabilityName: "warming", EDSServiceName: "svc", Type: upstream.EDS, Warming: true},
	}

	var b bytes.Buffer
	if err := manager.WriteEnvoyText(&b, clusters); err != nil {
		t.Fatal(err)
	}
	want := `static::observability_name::alt
static::default_priority::max_connections::1
static::default_priority::max_pending_requests::2
static::default_priority::max_requests::3
static::default_priority::max_retries::4
static::high_priority::max_connections::5
static::high_priority::max_pending_requests::6
static::high_priority::max_requests::7
static::high_priority::max_retries::18446744073709551615
static::added_via_api::true
static::10.0.0.2:80::cx_active::0
static::10.0.0.2:80::cx_connect_fail::0
static::10.0.0.2:80::cx_total::0
static::10.0.0.2:80::rq_active::0
static::10.0.0.2:80::rq_total::0
static::10.0.0.2:80::hostname::
static::10.0.0.2:80::health_flags::/degraded_eds_health
static::10.0.0.2:80::weight::1
static::10.0.0.2:80::region::
static::10.0.0.2:80::zone::
static::10.0.0.2:80::sub_zone::
static::10.0.0.2:80::canary::false
static::10.0.0.2:80::priority::0
static::10.0.0.2:80::success_rate::-1
static::10.0.0.2:80::local_origin_success_rate::100
static::/run/app.sock::cx_active::0
static::/run/app.sock::cx_connect_fail::0
static::/run/app.sock::cx_total::0
static::/run/app.sock::rq_active::0
static::/run/app.sock::rq_total::0
static::/run/app.sock::hostname::
static::/run/app.sock::health_flags::/eds_status_draining
static::/run/app.sock::weight::1
static::/run/app.sock::region::
static::/run/app.sock::zone::
static::/run/app.sock::sub_zone::
static::/run/app.sock::canary::false
static::/run/app.sock::priority::0
static::/run/app.sock::success_rate::-1
static::/run/app.sock::local_origin_success_rate::-1
static::envoy://connect_originate/10.0.0.3:80::cx_active::0
static::envoy://connect_originate/10.0.0.3:80::cx_connect_fail::0
static::envoy://connect_originate/10.0.0.3:80::cx_total::0
static::envoy://connect_originate/10.0.0.3:80::rq_active::0
static::envoy://connect_originate/10.0.0.3:80::rq_total::0
static::envoy://connect_originate/10.0.0.3:80::hostname::
static::envoy://connect_originate/10.0.0.3:80::health_flags::/failed_eds_health
static::envoy://connect_originate/10.0.0.3:80::weight::1
static::envoy://connect_originate/10.0.0.3:80::region::
static::envoy://connect_originate/10.0.0.3:80::zone::
static::envoy://connect_originate/10.0.0.3:80::sub_zone::
static::envoy://connect_originate/10.0.0.3:80::canary::false
static::envoy://connect_originate/10.0.0.3:80::priority::0
static::envoy://connect_originate/10.0.0.3:80::success_rate::-1
static::envoy://connect_originate/10.0.0.3:80::local_origin_success_rate::-1
static::[fd00::1]:8080::cx_active::2
static::[fd00::1]:8080::cx_connect_fail::4
static::[fd00::1]:8080::cx_total::7
static::[fd00::1]:8080::rq_active::0
static::[fd00::1]:8080::rq_total::9
static::[fd00::1]:8080::hostname::h1
static::[fd00::1]:8080::health_flags::/failed_outlier_check/failed_eds_health
static::[fd00::1]:8080::weight::3
static::[fd00::1]:8080::region::r
static::[fd00::1]:8080::zone::z
static::[fd00::1]:8080::sub_zone::s
static::[fd00::1]:8080::canary::false
static::[fd00::1]:8080::priority::1
static::[fd00::1]:8080::success_rate::50
static::[fd00::1]:8080::local_origin_success_rate::99.5
warming::observability_name::warming
warming::default_priority::max_connections::0
warming::default_priority::max_pending_requests::0
warming::default_priority::max_requests::0
warming::default_priority::max_retries::0
warming::high_priority::max_connections::0
warming::high_priority::max_pending_requests::0
warming::high_priority::max_requests::0
warming::high_priority::max_retries::0
warming::added_via_api::true
warming::eds_service_name::svc
`
	if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(b.String(), "\n")); diff != "" {
		t.Errorf("text form (-want +got):\n%s", diff)
	}

	j, err := manager.EnvoyJSON(clusters)
	if err != nil {
		t.Fatal(err)
	}
	got := readEnvoyJSON(t, j)
	if n := len(got.GetClusterStatuses()); n != 2 {
		t.Fatalf("%d clusters, want 2:\n%s", n, j)
	}
	st, warming := got.GetClusterStatuses()[0], got.GetClusterStatuses()[1]
	if st.GetObservabilityName() != "alt" || st.GetEdsServiceName() != "" || warming.GetEdsServiceName() != "svc" || len(warming.GetHostStatuses()) != 0 {
		t.Errorf("cluster names: %v %v", st, warming)
	}
	if th := st.GetCircuitBreakers().GetThresholds(); len(th) != 2 || th[1].GetPriority() != corev3.RoutingPriority_HIGH ||
		th[1].GetMaxRetries().GetValue() != 4294967295 || th[0].GetMaxPendingRequests().GetValue() != 2 {
		t.Errorf("thresholds %v: want the high priority's unlimited retries as 4294967295 (uint32)", th)
	}
	socket := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	pipe := &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/app.sock"}}}
	internal := &corev3.Address{Address: &corev3.Address_EnvoyInternalAddress{EnvoyInternalAddress: &corev3.EnvoyInternalAddress{
		AddressNameSpecifier: &corev3.EnvoyInternalAddress_ServerListenerName{ServerListenerName: "connect_originate"}, EndpointId: "10.0.0.3:80"}}}
	for i, w := range []struct {
		addr    *corev3.Address
		eds     corev3.HealthStatus
		ejected bool
		sr      *typev3.Percent
		localSR *typev3.Percent
	}{
		{socket("10.0.0.2", 80), corev3.HealthStatus_DEGRADED, false, nil, &typev3.Percent{Value: 100}},
		{pipe, corev3.HealthStatus_DRAINING, false, nil, nil},
		{internal, corev3.HealthStatus_UNHEALTHY, false, nil, nil}, // TIMEOUT shows as UNHEALTHY, as in Envoy
		{socket("fd00::1", 8080), corev3.HealthStatus_UNHEALTHY, true, &typev3.Percent{Value: 50}, &typev3.Percent{Value: 99.5}},
	} {
		h := st.GetHostStatuses()[i]
		if !proto.Equal(h.GetAddress(), w.addr) || h.GetHealthStatus().GetEdsHealthStatus() != w.eds || h.GetHealthStatus().GetFailedOutlierCheck() != w.ejected ||
			!proto.Equal(h.GetSuccessRate(), w.sr) || !proto.Equal(h.GetLocalOriginSuccessRate(), w.localSR) {
			t.Errorf("host %d: %v\nwant address %v, EDS %v, ejected %v, success rates %v %v", i, h, w.addr, w.eds, w.ejected, w.sr, w.localSR)
		}
	}
	if h := st.GetHostStatuses()[3]; h.GetHostname() != "h1" || h.GetWeight() != 3 || h.GetPriority() != 1 ||
		!proto.Equal(h.GetLocality(), &corev3.Locality{Region: "r", Zone: "z", SubZone: "s"}) {
		t.Errorf("host [fd00::1]:8080: %v", h)
	}
	stats := map[string]uint64{}
	for _, m := range st.GetHostStatuses()[3].GetStats() {
		stats[m.GetName()] = m.GetValue()
	}
	if want := map[string]uint64{"cx_connect_fail": 4, "cx_total": 7, "rq_total": 9, "cx_active": 2, "rq_active": 0}; !maps.Equal(stats, want) {
		t.Errorf("host [fd00::1]:8080 stats %v, want %v", stats, want)
	}
}
