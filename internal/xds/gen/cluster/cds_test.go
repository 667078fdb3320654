package cluster

import (
	"bytes"
	"math"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/gentest"
)

// TestGolden renders every cluster of a sidecar for one configuration per
// case, checks each against Envoy's validation rules, and compares the
// whole set with testdata/<case>.golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	cases := []struct {
		name  string
		mesh  *meshconfig.MeshConfig
		files func(t *testing.T) []string
		proxy func() *model.Proxy
		// only keeps the clusters of these hosts (plus inbound and fixed
		// ones when empty) to keep goldens readable.
	}{
		{name: "bookinfo_no_dr"},
		{name: "bookinfo_dr_all", files: func(t *testing.T) []string { return []string{sample(t, "destination-rule-all.yaml")} }},
		{name: "bookinfo_dr_all_mtls", files: func(t *testing.T) []string { return []string{sample(t, "destination-rule-all-mtls.yaml")} }},
		{name: "bookinfo_dr_reviews_random", files: func(t *testing.T) []string { return []string{sample(t, "destination-rule-reviews.yaml")} }},
		{name: "egress_google_apis", files: func(t *testing.T) []string { return []string{sample(t, "egress-rule-google-apis.yaml")} }},
		{name: "traffic_policy", files: files("traffic_policy.yaml")},
		{name: "tls", files: files("tls.yaml")},
		{name: "subsets", files: files("subsets.yaml")},
		{name: "locality", files: func(*testing.T) []string { return []string{gentest.Fixture("locality.yaml")} }, proxy: func() *model.Proxy {
			p := productpage()
			p.Locality = "us-east/zone1/sub1"
			return p
		}},
		{name: "resolution", files: files("resolution.yaml")},
		{name: "sidecar_scope", files: files("sidecar_scope.yaml")},
		{name: "export_to", files: files("export_to.yaml")},
		{name: "inbound", files: files("inbound.yaml")},
		{name: "inbound_localhost", files: files("inbound.yaml"), mesh: mesh(func(m *meshconfig.MeshConfig) {
			m.InboundTrafficPolicy = &meshconfig.MeshConfig_InboundTrafficPolicy{Mode: meshconfig.MeshConfig_InboundTrafficPolicy_LOCALHOST}
		})},
		{name: "sidecar_ingress", files: files("sidecar_ingress.yaml", "inbound.yaml")},
		{name: "peer_authentication", files: files("peer_authentication.yaml")},
		{name: "tls_port_level", files: files("tls_port_level.yaml")},
		{name: "tls_trust_domain_aliases", files: files("tls_port_level.yaml"), mesh: mesh(func(m *meshconfig.MeshConfig) {
			m.TrustDomain = "prod.example"
			m.TrustDomainAliases = []string{"old.example"}
		})},
		{name: "interception_none", proxy: func() *model.Proxy {
			p := productpage()
			p.Metadata[model.MetaInterception] = "NONE"
			return p
		}},
		{name: "ipv6_proxy", files: files("resolution.yaml"), proxy: func() *model.Proxy {
			return gentest.Proxy("fd00::1", "default", map[string]string{"app": "client"})
		}},
		{name: "mesh_settings", files: files("resolution.yaml"), mesh: mesh(func(m *meshconfig.MeshConfig) {
			m.ConnectTimeout = durationpb.New(2 * time.Second)
			m.H2UpgradePolicy = meshconfig.MeshConfig_UPGRADE
			m.EnableAutoMtls = wrapperspb.Bool(false)
			m.DnsRefreshRate = durationpb.New(10 * time.Second)
			m.TcpKeepalive = &networking.ConnectionPoolSettings_TCPSettings_TcpKeepalive{Time: durationpb.New(300 * time.Second)}
			m.TlsDefaults = &meshconfig.MeshConfig_TLSConfig{EcdhCurves: []string{"P-256"}, CipherSuites: []string{"ECDHE-ECDSA-AES128-GCM-SHA256"}}
			m.LocalityLbSetting = &networking.LocalityLoadBalancerSetting{Distribute: []*networking.LocalityLoadBalancerSetting_Distribute{
				{From: "*", To: map[string]uint32{"*": 100}},
			}}
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var extra []string
			if tc.files != nil {
				extra = tc.files(t)
			}
			cfgs := gentest.Files(t, append([]string{gentest.Bookinfo()}, extra...)...)
			p := productpage()
			if tc.proxy != nil {
				p = tc.proxy()
			}
			cs := Build(scopeOf(tc.mesh, cfgs, p))
			gentest.Validate(t, toMsgs(cs)...)
			gentest.Golden(t, tc.name, toMsgs(cs)...)
		})
	}
}

func files(names ...string) func(t *testing.T) []string {
	return func(*testing.T) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = local(n)
		}
		return out
	}
}

// TestDeterministic builds the same clusters from two independently built
// snapshots and compares their wire bytes.
func TestDeterministic(t *testing.T) {
	build := func() []byte {
		sc := scope(t, nil, sample(t, "destination-rule-all-mtls.yaml"), local("traffic_policy.yaml"),
			local("tls.yaml"), local("subsets.yaml"), gentest.Fixture("locality.yaml"), local("resolution.yaml"))
		var buf bytes.Buffer
		for _, c := range Build(sc) {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
		}
		return buf.Bytes()
	}
	first := build()
	for i := 0; i < 3; i++ {
		if !bytes.Equal(first, build()) {
			t.Fatal("two builds of the same snapshot differ")
		}
	}
}

func TestBuildSortedAndUnique(t *testing.T) {
	cs := Build(scope(t, nil, sample(t, "destination-rule-all.yaml"), local("resolution.yaml")))
	for i := 1; i < len(cs); i++ {
		if cs[i-1].Name >= cs[i].Name {
			t.Fatalf("clusters not sorted/unique at %d: %q then %q", i, cs[i-1].Name, cs[i].Name)
		}
	}
}

func TestOutbound(t *testing.T) {
	sc := scope(t, nil, sample(t, "destination-rule-all.yaml"))
	svc, _ := sc.Service("reviews.default.svc.cluster.local")
	port, _ := svc.Port(9080)
	all := Build(sc)
	for _, subset := range []string{"", "v1", "v3"} {
		got := Outbound(sc, svc, port, subset)
		want := find(t, all, model.ClusterName(model.Outbound, 9080, subset, svc.Hostname))
		if !proto.Equal(got, want) {
			t.Errorf("Outbound(%q) differs from Build's cluster", subset)
		}
	}
	if c := Outbound(sc, svc, port, "v9"); c != nil {
		t.Errorf("Outbound for an undefined subset = %s, want nil", c.Name)
	}
}

// TestApplyTrafficPolicy checks the exported building block on a cluster
// the caller built itself (as the gRPC generator does).
func TestApplyTrafficPolicy(t *testing.T) {
	sc := scope(t, nil, local("subsets.yaml"))
	svc, _ := sc.Service("shop.default.svc.cluster.local")
	port, _ := svc.Port(9443)
	name := model.ClusterName(model.Outbound, 9443, "v2", svc.Hostname)
	c := &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	dr, _ := sc.DestinationRule(svc.Hostname)
	policy := model.MergeTrafficPolicy(dr.Spec.(*networking.DestinationRule), "v2", port.Number)
	ApplyTrafficPolicy(sc, c, svc, port, "v2", policy)
	gentest.Validate(t, c)
	if c.LbPolicy != clusterv3.Cluster_LEAST_REQUEST {
		t.Errorf("lb_policy = %v, want LEAST_REQUEST (subset)", c.LbPolicy)
	}
	// The subset's connectionPool replaces the destination-level one as a
	// whole: max_connections falls back to the default.
	if got := c.GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue(); got != math.MaxUint32 {
		t.Errorf("max_connections = %d, want the default", got)
	}
	if got := c.GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue(); got != 7 {
		t.Errorf("max_requests = %d, want 7 (subset)", got)
	}
	if c.GetTransportSocket().GetName() != tlsSocketName {
		t.Errorf("transport socket = %v, want TLS (destination-level ISTIO_MUTUAL)", c.GetTransportSocket())
	}
	if c.OutlierDetection.GetConsecutive_5Xx().GetValue() != 5 {
		t.Errorf("outlier detection = %v, want consecutive_5xx 5", c.OutlierDetection)
	}
}
