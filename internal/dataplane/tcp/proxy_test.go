package tcp

import (
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func cluster(name string) *tcpv3.TcpProxy {
	return &tcpv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: name}}
}

func weighted(ws ...*tcpv3.TcpProxy_WeightedCluster_ClusterWeight) *tcpv3.TcpProxy {
	return &tcpv3.TcpProxy{StatPrefix: "split", ClusterSpecifier: &tcpv3.TcpProxy_WeightedClusters{
		WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{Clusters: ws},
	}}
}

func cw(name string, w uint32) *tcpv3.TcpProxy_WeightedCluster_ClusterWeight {
	return &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: name, Weight: w}
}

func TestCompileDefaults(t *testing.T) {
	s, err := Compile(cluster("outbound|80||a"))
	if err != nil {
		t.Fatal(err)
	}
	if s.IdleTimeout != time.Hour || s.MaxConnectAttempts != 1 || s.MaxDuration != 0 || s.BackoffBase != 0 || s.HashSourceIP {
		t.Errorf("defaults: %+v", s)
	}
	tp := cluster("c")
	tp.IdleTimeout = durationpb.New(0)
	tp.MaxConnectAttempts = wrapperspb.UInt32(3)
	tp.BackoffOptions = &corev3.BackoffStrategy{BaseInterval: durationpb.New(10 * time.Millisecond)}
	tp.MaxDownstreamConnectionDuration = durationpb.New(time.Minute)
	tp.MaxDownstreamConnectionDurationJitterPercentage = &typev3.Percent{Value: 10}
	tp.HashPolicy = []*typev3.HashPolicy{{PolicySpecifier: &typev3.HashPolicy_SourceIp_{SourceIp: &typev3.HashPolicy_SourceIp{}}}}
	s, err = Compile(tp)
	if err != nil {
		t.Fatal(err)
	}
	if s.IdleTimeout != 0 || s.MaxConnectAttempts != 3 || s.BackoffBase != 10*time.Millisecond || s.BackoffMax != 100*time.Millisecond ||
		s.MaxDuration != time.Minute || s.MaxDurationJitter != 10 || !s.HashSourceIP {
		t.Errorf("settings: %+v", s)
	}
}

func TestCompileErrors(t *testing.T) {
	mod := func(f func(*tcpv3.TcpProxy)) *tcpv3.TcpProxy {
		tp := cluster("c")
		f(tp)
		return tp
	}
	tests := []struct {
		name string
		tp   *tcpv3.TcpProxy
		want string
	}{
		{"no stat prefix", mod(func(tp *tcpv3.TcpProxy) { tp.StatPrefix = "" }), "stat_prefix is required"},
		{"no cluster", &tcpv3.TcpProxy{StatPrefix: "x"}, "one of cluster or weighted_clusters is required"},
		{"empty cluster", mod(func(tp *tcpv3.TcpProxy) { tp.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{} }), "cluster is empty"},
		{"zero weight", weighted(cw("a", 1), cw("b", 0)), `clusters[1] ("b"): weight must be at least 1`},
		{"no weighted clusters", weighted(), "weighted_clusters has no clusters"},
		{"attempts 0", mod(func(tp *tcpv3.TcpProxy) { tp.MaxConnectAttempts = wrapperspb.UInt32(0) }), "max_connect_attempts must be at least 1"},
		{"negative idle", mod(func(tp *tcpv3.TcpProxy) { tp.IdleTimeout = durationpb.New(-time.Second) }), "idle_timeout: invalid duration"},
		{"tiny backoff", mod(func(tp *tcpv3.TcpProxy) {
			tp.BackoffOptions = &corev3.BackoffStrategy{BaseInterval: durationpb.New(time.Microsecond)}
		}), "base_interval must be at least 1ms"},
		{"tunneling", mod(func(tp *tcpv3.TcpProxy) { tp.TunnelingConfig = &tcpv3.TcpProxy_TunnelingConfig{Hostname: "h"} }), "tunneling_config is not supported"},
		{"on demand", mod(func(tp *tcpv3.TcpProxy) { tp.OnDemand = &tcpv3.TcpProxy_OnDemand{} }), "on_demand is not supported"},
		{"metadata match", mod(func(tp *tcpv3.TcpProxy) { tp.MetadataMatch = &corev3.Metadata{} }), "metadata_match"},
		{"connect mode", mod(func(tp *tcpv3.TcpProxy) { tp.UpstreamConnectMode = tcpv3.UpstreamConnectMode_ON_DOWNSTREAM_DATA }), "upstream_connect_mode ON_DOWNSTREAM_DATA"},
		{"header hash", mod(func(tp *tcpv3.TcpProxy) {
			tp.HashPolicy = []*typev3.HashPolicy{{PolicySpecifier: &typev3.HashPolicy_FilterState_{FilterState: &typev3.HashPolicy_FilterState{Key: "k"}}}}
		}), "hash_policy[0]: only source_ip is supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.tp)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPickWeighted(t *testing.T) {
	s, err := Compile(weighted(cw("a", 70), cw("b", 30)))
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[uint64]string{0: "a", 69: "a", 70: "b", 99: "b"} {
		if got := s.pick(func(n uint64) uint64 {
			if n != 100 {
				t.Fatalf("total weight %d", n)
			}
			return v
		}); got != want {
			t.Errorf("r=%d: %s, want %s", v, got, want)
		}
	}
}

func TestBuilder(t *testing.T) {
	if _, err := NewBuilder(Config{}); err == nil {
		t.Error("builder without an Upstream")
	}
	b, err := NewBuilder(Config{Upstream: &Direct{}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := anypb.New(cluster("c"))
	h, err := b.Build(&listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}})
	if err != nil || h.(*Proxy).Settings().Cluster != "c" {
		t.Errorf("build: %v", err)
	}
	e, _ := anypb.New(&emptypb.Empty{})
	if _, err := b.Build(&listenerv3.Filter{ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: e}}); err == nil {
		t.Error("built from the wrong type")
	}
}
