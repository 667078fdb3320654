package cluster

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

func lb(s networking.LoadBalancerSettings_SimpleLB) *networking.LoadBalancerSettings {
	return &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: s}}
}

func pool(maxConn int32) *networking.ConnectionPoolSettings {
	return &networking.ConnectionPoolSettings{Tcp: &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: maxConn}}
}

func tlsMode(m networking.ClientTLSSettings_TLSmode) *networking.ClientTLSSettings {
	return &networking.ClientTLSSettings{Mode: m}
}

func portLevel(port uint32, p *networking.TrafficPolicy_PortTrafficPolicy) *networking.TrafficPolicy_PortTrafficPolicy {
	p.Port = &networking.PortSelector{Number: port}
	return p
}

// TestMergeTrafficPolicy pins Istio's precedence: subset over destination
// level field by field; port-level settings within each level replace the
// four port-level fields wholesale (omitted ones fall back to defaults, not
// to the level above).
func TestMergeTrafficPolicy(t *testing.T) {
	top := &networking.TrafficPolicy{
		LoadBalancer:     lb(networking.LoadBalancerSettings_ROUND_ROBIN),
		ConnectionPool:   pool(10),
		OutlierDetection: &networking.OutlierDetection{Interval: durationpb.New(time.Second)},
		Tls:              tlsMode(networking.ClientTLSSettings_ISTIO_MUTUAL),
		ProxyProtocol:    &networking.TrafficPolicy_ProxyProtocol{},
		PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{
			portLevel(80, &networking.TrafficPolicy_PortTrafficPolicy{LoadBalancer: lb(networking.LoadBalancerSettings_RANDOM)}),
		},
	}
	subsetPolicy := &networking.TrafficPolicy{
		ConnectionPool: pool(20),
		PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{
			portLevel(443, &networking.TrafficPolicy_PortTrafficPolicy{Tls: tlsMode(networking.ClientTLSSettings_SIMPLE)}),
		},
	}
	dr := &networking.DestinationRule{
		Host:          "svc",
		TrafficPolicy: top,
		Subsets: []*networking.Subset{
			{Name: "plain"},
			{Name: "own", TrafficPolicy: subsetPolicy},
		},
	}
	type want struct {
		lb      networking.LoadBalancerSettings_SimpleLB
		maxConn int32 // 0: no pool
		outlier bool
		tls     networking.ClientTLSSettings_TLSmode // -1: none
		proxy   bool
	}
	const noTLS = networking.ClientTLSSettings_TLSmode(-1)
	cases := []struct {
		name   string
		dr     *networking.DestinationRule
		subset string
		port   uint32
		want   *want
	}{
		{"no rule", nil, "", 8080, nil},
		{"destination level", dr, "", 8080, &want{networking.LoadBalancerSettings_ROUND_ROBIN, 10, true, networking.ClientTLSSettings_ISTIO_MUTUAL, true}},
		{"destination port level replaces all four fields", dr, "", 80, &want{networking.LoadBalancerSettings_RANDOM, 0, false, noTLS, false}},
		{"subset without policy inherits", dr, "plain", 8080, &want{networking.LoadBalancerSettings_ROUND_ROBIN, 10, true, networking.ClientTLSSettings_ISTIO_MUTUAL, true}},
		{"subset without policy inherits port level", dr, "plain", 80, &want{networking.LoadBalancerSettings_RANDOM, 0, false, noTLS, false}},
		{"subset overrides set fields only", dr, "own", 8080, &want{networking.LoadBalancerSettings_ROUND_ROBIN, 20, true, networking.ClientTLSSettings_ISTIO_MUTUAL, true}},
		{"subset over destination port level", dr, "own", 80, &want{networking.LoadBalancerSettings_RANDOM, 20, false, noTLS, false}},
		{"subset port level replaces all four fields", dr, "own", 443, &want{networking.LoadBalancerSettings_UNSPECIFIED, 0, false, networking.ClientTLSSettings_SIMPLE, true}},
		{"unknown subset is destination level", dr, "nope", 8080, &want{networking.LoadBalancerSettings_ROUND_ROBIN, 10, true, networking.ClientTLSSettings_ISTIO_MUTUAL, true}},
		{"port 0 ignores port level", dr, "", 0, &want{networking.LoadBalancerSettings_ROUND_ROBIN, 10, true, networking.ClientTLSSettings_ISTIO_MUTUAL, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := model.MergeTrafficPolicy(tc.dr, tc.subset, tc.port)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("got %v, want nil", got)
				}
				return
			}
			if g := got.GetLoadBalancer().GetSimple(); g != tc.want.lb {
				t.Errorf("load balancer = %v, want %v", g, tc.want.lb)
			}
			if g := got.GetConnectionPool().GetTcp().GetMaxConnections(); g != tc.want.maxConn {
				t.Errorf("maxConnections = %d, want %d", g, tc.want.maxConn)
			}
			if g := got.GetOutlierDetection() != nil; g != tc.want.outlier {
				t.Errorf("outlier detection set = %v, want %v", g, tc.want.outlier)
			}
			gotTLS := noTLS
			if got.GetTls() != nil {
				gotTLS = got.GetTls().GetMode()
			}
			if gotTLS != tc.want.tls {
				t.Errorf("tls = %v, want %v", gotTLS, tc.want.tls)
			}
			if g := got.GetProxyProtocol() != nil; g != tc.want.proxy {
				t.Errorf("proxy protocol set = %v, want %v", g, tc.want.proxy)
			}
		})
	}
}

// TestMergeInClusters checks the same precedence end to end on generated
// clusters (testdata/subsets.yaml).
func TestMergeInClusters(t *testing.T) {
	cs := Build(scope(t, nil, local("subsets.yaml")))
	host := "shop.default.svc.cluster.local"
	cases := []struct {
		port    uint32
		subset  string
		lb      clusterv3.Cluster_LbPolicy
		maxConn uint32
		timeout time.Duration
		tls     string // "explicit", "auto", "none"
	}{
		{9080, "", clusterv3.Cluster_RANDOM, maxU32, 10 * time.Second, "auto"},
		{9080, "v2", clusterv3.Cluster_LEAST_REQUEST, maxU32, 10 * time.Second, "auto"},
		{9080, "v3", clusterv3.Cluster_RANDOM, maxU32, time.Second, "auto"},
		{9443, "", clusterv3.Cluster_ROUND_ROBIN, 10, 10 * time.Second, "explicit"},
		{9443, "v1", clusterv3.Cluster_ROUND_ROBIN, 10, 10 * time.Second, "explicit"},
		{9443, "v2", clusterv3.Cluster_LEAST_REQUEST, maxU32, 10 * time.Second, "explicit"},
		{9443, "v3", clusterv3.Cluster_LEAST_REQUEST, maxU32, 10 * time.Second, "auto"},
		{9443, "direct", clusterv3.Cluster_CLUSTER_PROVIDED, 10, 10 * time.Second, "explicit"},
	}
	for _, tc := range cases {
		name := model.ClusterName(model.Outbound, tc.port, tc.subset, host)
		t.Run(name, func(t *testing.T) {
			c := find(t, cs, name)
			if c.LbPolicy != tc.lb {
				t.Errorf("lb_policy = %v, want %v", c.LbPolicy, tc.lb)
			}
			if g := c.GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue(); g != tc.maxConn {
				t.Errorf("max_connections = %d, want %d", g, tc.maxConn)
			}
			if g := c.GetConnectTimeout().AsDuration(); g != tc.timeout {
				t.Errorf("connect_timeout = %v, want %v", g, tc.timeout)
			}
			gotTLS := "none"
			if c.TransportSocket != nil {
				gotTLS = "explicit"
			} else if len(c.TransportSocketMatches) > 0 {
				gotTLS = "auto"
			}
			if gotTLS != tc.tls {
				t.Errorf("tls = %s, want %s", gotTLS, tc.tls)
			}
		})
	}
}

const maxU32 = 1<<32 - 1

// TestOutlierGatewayOnly pins the divergence-prone case: with only
// consecutiveGatewayErrors, current Istio leaves Envoy's default
// consecutive-5xx ejection on (consecutive_5xx unset); only the deprecated
// consecutiveErrors field turns it off.
func TestOutlierGatewayOnly(t *testing.T) {
	cs := Build(scope(t, nil, local("traffic_policy.yaml")))
	gw := find(t, cs, "outbound|8080||outlier-gateway-only.default.svc.cluster.local").OutlierDetection
	if gw.EnforcingConsecutive_5Xx != nil || gw.Consecutive_5Xx != nil {
		t.Errorf("gateway-only: consecutive_5xx settings = %v/%v, want unset", gw.Consecutive_5Xx, gw.EnforcingConsecutive_5Xx)
	}
	legacy := find(t, cs, "outbound|8080||outlier-legacy.default.svc.cluster.local").OutlierDetection
	if legacy.GetEnforcingConsecutive_5Xx() == nil || legacy.GetEnforcingConsecutive_5Xx().GetValue() != 0 {
		t.Errorf("consecutiveErrors: enforcing_consecutive_5xx = %v, want 0", legacy.GetEnforcingConsecutive_5Xx())
	}
}

// TestAutoMTLS covers when transport_socket_matches appear.
func TestAutoMTLS(t *testing.T) {
	cases := []struct {
		name, cluster string
		files         []string
		want          string
	}{
		{"in-mesh service", "outbound|9080||reviews.default.svc.cluster.local", nil, "auto"},
		{"mesh-external service", "outbound|443||www.googleapis.com", []string{"egress"}, "explicit"},
		{"mesh-external plain port", "outbound|80||www.googleapis.com", []string{"egress"}, "none"},
		{"namespace PeerAuthentication DISABLE", "outbound|8080||legacy.plain.svc.cluster.local", []string{"peer_authentication.yaml"}, "none"},
		{"mesh STRICT", "outbound|8080||strict.secure.svc.cluster.local", []string{"peer_authentication.yaml"}, "auto"},
		{"headless, all with proxies", "outbound|5432||headless.default.svc.cluster.local", []string{"resolution.yaml"}, "explicit"},
		{"headless, some without", "outbound|5432||headless-mixed.default.svc.cluster.local", []string{"resolution.yaml"}, "none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var files []string
			for _, f := range tc.files {
				if f == "egress" {
					files = append(files, sample(t, "egress-rule-google-apis.yaml"))
				} else {
					files = append(files, local(f))
				}
			}
			c := find(t, Build(scope(t, nil, files...)), tc.cluster)
			got := "none"
			if c.TransportSocket != nil {
				got = "explicit"
			} else if len(c.TransportSocketMatches) > 0 {
				got = "auto"
			}
			if got != tc.want {
				t.Errorf("tls = %s, want %s", got, tc.want)
			}
		})
	}
	// With auto mTLS off in the mesh nothing is inferred.
	m := mesh(func(m *meshconfigMesh) { m.EnableAutoMtls = boolValue(false) })
	c := find(t, Build(scope(t, m)), "outbound|9080||reviews.default.svc.cluster.local")
	if c.TransportSocket != nil || len(c.TransportSocketMatches) > 0 {
		t.Error("enableAutoMtls=false: got a transport socket")
	}
	gentest.Validate(t, c)
}
