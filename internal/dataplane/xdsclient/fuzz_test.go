package xdsclient

import (
	"log/slog"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// FuzzResponse feeds arbitrary bytes, as a server could send them, through
// both protocols' decoding and the state machine: nothing may panic, and
// every response of a known type is answered by exactly one ACK or NACK.
func FuzzResponse(f *testing.F) {
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	cluster, _ := anypb.New(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads}})
	hcm, _ := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: "s", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
		Rds: &hcmv3.Rds{ConfigSource: ads, RouteConfigName: "r"}}})
	listener, _ := anypb.New(&listenerv3.Listener{Name: "l", DefaultFilterChain: &listenerv3.FilterChain{
		Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}})
	for _, m := range []proto.Message{
		&discoveryv3.DiscoveryResponse{TypeUrl: ClusterType, VersionInfo: "1", Nonce: "1", Resources: []*anypb.Any{cluster}},
		&discoveryv3.DiscoveryResponse{TypeUrl: ListenerType, VersionInfo: "1", Nonce: "2", Resources: []*anypb.Any{listener, listener}},
		&discoveryv3.DeltaDiscoveryResponse{TypeUrl: ClusterType, Nonce: "1", Resources: []*discoveryv3.Resource{{Name: "c", Version: "1", Resource: cluster}}},
		&discoveryv3.DeltaDiscoveryResponse{TypeUrl: ListenerType, Nonce: "2", RemovedResources: []string{"x"},
			Resources: []*discoveryv3.Resource{{Name: "other", Resource: listener}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range []protocol{sotw{}, delta{}} {
			r, err := p.decode(b)
			if err != nil {
				continue
			}
			cfg := &Config{
				Node:     &corev3.Node{Id: "sidecar~10.0.0.1~a.default~default.svc.cluster.local"},
				Consumer: ConsumerFunc(func(*Set) map[string]error { return nil }),
				Metrics:  nopMetrics{},
				Logger:   slog.New(slog.DiscardHandler),
			}
			now := time.Now()
			s := newState(p, cfg, newBoard("", p.kind()), now)
			s.ldsStarted = true
			s.startStream(now)
			s.takeOut()
			s.handle(r, now)
			s.tick(now.Add(time.Hour))
			if s.typeOf(r.typeURL) == nil {
				continue
			}
			// The answer to the response is the only request of its type:
			// subscription changes concern the dependent type.
			replies := 0
			for _, req := range s.takeOut() {
				if typeURLOf(req) == r.typeURL {
					replies++
				}
			}
			if replies != 1 {
				t.Fatalf("%s: %d requests answering a %s response, want 1", p.kind(), replies, r.typeURL)
			}
		}
	})
}

func typeURLOf(req proto.Message) string {
	switch r := req.(type) {
	case *discoveryv3.DiscoveryRequest:
		return r.GetTypeUrl()
	case *discoveryv3.DeltaDiscoveryRequest:
		return r.GetTypeUrl()
	}
	return ""
}
