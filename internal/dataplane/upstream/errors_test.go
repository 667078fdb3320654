package upstream_test

import (
	"math"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	maglevv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
)

func edsCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 "c",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		ConnectTimeout:       durationpb.New(time.Second),
	}
}

func socketEndpoint(addr string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
	}}}
}

func assignment(eps ...*endpointv3.LbEndpoint) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: eps}}}
}

// http1Options are explicit HTTP/1.1 options (the protocol is required).
func http1Options(common *corev3.HttpProtocolOptions) *httpv3.HttpProtocolOptions {
	return &httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
		}},
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCompileErrors: invalid or unsupported clusters are rejected with a
// message naming the cluster and the field (Envoy's wording where it has
// one), ready for a NACK.
func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(t *testing.T, c *clusterv3.Cluster)
		want   string
	}{
		{"PGV: connect_timeout", func(t *testing.T, c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(0) },
			`cluster "c": invalid Cluster.ConnectTimeout: value must be greater than 0s`},
		{"ORIGINAL_DST with ROUND_ROBIN", func(t *testing.T, c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		}, "cluster: LB policy ROUND_ROBIN is not valid for Cluster type ORIGINAL_DST. Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'"},
		{"CLUSTER_PROVIDED on EDS", func(t *testing.T, c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED },
			"cluster provided LB specified but cluster 'c' did not provide one"},
		{"maglev table not prime", func(t *testing.T, c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(65536)}}
		}, "The table size of maglev must be prime number"},
		{"ring min > max", func(t *testing.T, c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
				MinimumRingSize: wrapperspb.UInt64(20), MaximumRingSize: wrapperspb.UInt64(10),
			}}
		}, "ring hash: minimum_ring_size (20) > maximum_ring_size (10)"},
		{"least request choice count", func(t *testing.T, c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ChoiceCount: wrapperspb.UInt32(1)}}
		}, "ChoiceCount: value must be greater than or equal to 2"},
		{"outlier max < base", func(t *testing.T, c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{BaseEjectionTime: durationpb.New(time.Minute), MaxEjectionTime: durationpb.New(time.Second)}
		}, `cluster "c": outlier_detection: outlier detector's max_ejection_time cannot be smaller than base_ejection_time`},
		{"outlier enforcing over 100", func(t *testing.T, c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{EnforcingConsecutive_5Xx: wrapperspb.UInt32(101)}
		}, "EnforcingConsecutive_5Xx: value must be less than or equal to 100"},
		{"subset load balancing", func(t *testing.T, c *clusterv3.Cluster) {
			c.LbSubsetConfig = &clusterv3.Cluster_LbSubsetConfig{}
		}, "lb_subset_config: subset load balancing is not supported"},
		{"custom cluster type", func(t *testing.T, c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_ClusterType{ClusterType: &clusterv3.Cluster_CustomClusterType{Name: "envoy.clusters.aggregate"}}
		}, `cluster_type: custom cluster type "envoy.clusters.aggregate" is not supported`},
		{"LOGICAL_DNS with two endpoints", func(t *testing.T, c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
			c.LoadAssignment = assignment(socketEndpoint("a.example", 80), socketEndpoint("b.example", 80))
		}, "LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint"},
		{"STATIC with a host name", func(t *testing.T, c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			c.LoadAssignment = assignment(socketEndpoint("a.example", 80))
		}, "load_assignment: endpoints[0].lb_endpoints[0]: endpoint.address: malformed IP address: a.example"},
		{"HTTP options: typed and legacy", func(t *testing.T, c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{upstream.HTTPProtocolOptionsKey: mustAny(t, http1Options(nil))}
			c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{} //nolint:staticcheck // testing the deprecated field
		}, "cannot be combined with the deprecated"},
		{"HTTP options: wrong type", func(t *testing.T, c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{upstream.HTTPProtocolOptionsKey: mustAny(t, &corev3.Http2ProtocolOptions{})}
		}, `unexpected type "type.googleapis.com/envoy.config.core.v3.Http2ProtocolOptions"`},
		{"max_requests_per_connection twice", func(t *testing.T, c *clusterv3.Cluster) {
			c.MaxRequestsPerConnection = wrapperspb.UInt32(1) //nolint:staticcheck // testing the deprecated field
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{upstream.HTTPProtocolOptionsKey: mustAny(t,
				http1Options(&corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(2)}))}
		}, "Only one of max_requests_per_connection from Cluster or HttpProtocolOptions can be specified"},
		{"unknown typed LB policy", func(t *testing.T, c *clusterv3.Cluster) {
			c.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{{
				TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "x", TypedConfig: mustAny(t, &corev3.Locality{})},
			}}}
		}, "load_balancing_policy: no supported policy among [type.googleapis.com/envoy.config.core.v3.Locality]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := edsCluster()
			tc.mutate(t, c)
			_, err := upstream.Compile(c)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), `cluster "c": `) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestCompileDefaults: an empty EDS cluster gets Envoy's defaults.
func TestCompileDefaults(t *testing.T) {
	c, err := upstream.Compile(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "policy", c.LB.Policy, lb.RoundRobin)
	wantEq(t, "connect timeout", c.ConnectTimeout, 5*time.Second)
	wantEq(t, "panic", c.LB.PanicThreshold, uint32(50))
	wantEq(t, "breakers", c.Breakers[0].MaxRetries, uint64(3))
	wantEq(t, "per host", c.PerHostMaxConnections[0], uint64(math.MaxUint64))

	// Typed LB policy: the first known one wins.
	pc := edsCluster()
	pc.LoadBalancingPolicy = &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
		{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "unknown", TypedConfig: mustAny(t, &corev3.Locality{})}},
		{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: "maglev", TypedConfig: mustAny(t, &maglevv3.Maglev{TableSize: wrapperspb.UInt64(7)})}},
	}}
	c, err = upstream.Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "typed policy", c.LB.Policy, lb.Maglev)
	wantEq(t, "typed table", c.LB.MaglevTableSize, uint64(7))

	// Breakers: the first thresholds of a priority win; per-host limits.
	bc := edsCluster()
	bc.CircuitBreakers = &clusterv3.CircuitBreakers{
		Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
			{Priority: corev3.RoutingPriority_HIGH, MaxRequests: wrapperspb.UInt32(7)},
			{Priority: corev3.RoutingPriority_HIGH, MaxRequests: wrapperspb.UInt32(8)},
		},
		PerHostThresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxConnections: wrapperspb.UInt32(3)}},
	}
	c, err = upstream.Compile(bc)
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "high max requests", c.Breakers[1].MaxRequests, uint64(7))
	wantEq(t, "high max retries", c.Breakers[1].MaxRetries, uint64(3))
	wantEq(t, "default max requests", c.Breakers[0].MaxRequests, uint64(1024))
	wantEq(t, "per-host connections", c.PerHostMaxConnections[0], uint64(3))
}

func TestEndpointsErrors(t *testing.T) {
	named := socketEndpoint("10.0.0.1", 0)
	named.GetEndpoint().GetAddress().GetSocketAddress().PortSpecifier = &corev3.SocketAddress_NamedPort{NamedPort: "http"}
	heavy := func(w uint32) *endpointv3.LbEndpoint {
		e := socketEndpoint("10.0.0.1", 80)
		e.LoadBalancingWeight = wrapperspb.UInt32(w)
		return e
	}
	cases := []struct {
		name string
		cla  *endpointv3.ClusterLoadAssignment
		want string
	}{
		{"host name in EDS", assignment(socketEndpoint("reviews", 80)),
			`cluster load assignment "c": endpoints[0].lb_endpoints[0]: endpoint.address: malformed IP address: reviews`},
		{"named port", assignment(named), "named ports are not supported"},
		{"zero weight (PGV)", assignment(heavy(0)), "LoadBalancingWeight: value must be greater than or equal to 1"},
		{"host weights overflow", assignment(heavy(math.MaxUint32), heavy(1)),
			"The sum of weights of all upstream hosts in a locality exceeds 4294967295"},
		{"locality weights overflow", &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
			{LoadBalancingWeight: wrapperspb.UInt32(math.MaxUint32)}, {LoadBalancingWeight: wrapperspb.UInt32(1)},
		}}, "The sum of weights of all localities at the same priority exceeds 4294967295"},
		{"LEDS", &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbConfig: &endpointv3.LocalityLbEndpoints_LedsClusterLocalityConfig{LedsClusterLocalityConfig: &endpointv3.LedsClusterLocalityConfig{
				LedsCollectionName: "x", LedsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}},
			}},
		}}}, "LEDS is not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := upstream.Endpoints(tc.cla)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestEndpoints reads the generator's EDS: localities, weights, Istio's
// tlsMode and health.
func TestEndpoints(t *testing.T) {
	g := generate(t, reviewsRule(`    tls: {mode: ISTIO_MUTUAL}`), "us-east/zone1")
	cla := g.cla(t, reviewsCluster)
	cla.Endpoints[0].LbEndpoints[0].HealthStatus = corev3.HealthStatus_DRAINING
	eps, err := upstream.Endpoints(cla)
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "endpoints", eps.Len(), 3)
	wantEq(t, "localities", len(eps.Localities), 2)
	wantEq(t, "overprovisioning", eps.OverprovisioningFactor, uint32(140))
	l := eps.Localities[0]
	wantEq(t, "locality", l.Locality.String(), "us-east/zone1/")
	wantEq(t, "locality weight", l.Weight, uint32(2))
	e := l.Endpoints[0]
	wantEq(t, "address", e.Address.String(), "10.1.0.1:9080")
	wantEq(t, "weight", e.Weight, uint32(1))
	wantEq(t, "health", e.Health, corev3.HealthStatus_DRAINING)
	wantEq(t, "tls mode", e.TLSMode, "")

	// Pipes and internal addresses are endpoints too.
	pipe := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: "/run/app.sock"}}},
	}}}
	eps, err = upstream.Endpoints(assignment(pipe))
	if err != nil {
		t.Fatal(err)
	}
	wantEq(t, "pipe", eps.Localities[0].Endpoints[0].Address.String(), "/run/app.sock")
}
