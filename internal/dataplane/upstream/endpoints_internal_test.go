package upstream

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestHostKeepsOnlySocketMatchMetadata: a compiled host keeps the
// transport socket match namespace of its endpoint's metadata (matched at
// connection time) and nothing else, so Istio's per-endpoint workload
// metadata does not stay alive in every host.
func TestHostKeepsOnlySocketMatchMetadata(t *testing.T) {
	st := func(kv map[string]any) *structpb.Struct {
		s, err := structpb.NewStruct(kv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	lbe := func(md *corev3.Metadata) *endpointv3.LbEndpoint {
		return &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}}},
			Metadata:       md,
		}
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
		lbe(&corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			TransportSocketMatchKey: st(map[string]any{TLSModeKey: "istio"}),
			"istio":                 st(map[string]any{"workload": "reviews-v1;default;reviews;v1;Kubernetes"}),
			EnvoyLBKey:              st(map[string]any{HashKeyKey: "k1"}),
		}}),
		lbe(&corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": st(map[string]any{"workload": "w"})}}),
	}}}}
	set, err := endpoints(cla, false)
	if err != nil {
		t.Fatal(err)
	}
	eps := set.Localities[0].Endpoints
	want := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{TransportSocketMatchKey: st(map[string]any{TLSModeKey: "istio"})}}
	if !proto.Equal(eps[0].Metadata, want) {
		t.Errorf("host metadata %v, want only %s", eps[0].Metadata, TransportSocketMatchKey)
	}
	if eps[0].TLSMode != "istio" || eps[0].HashKey != "k1" {
		t.Errorf("TLSMode %q HashKey %q: the values read at compile time are lost", eps[0].TLSMode, eps[0].HashKey)
	}
	if eps[1].Metadata != nil {
		t.Errorf("endpoint without socket match metadata kept %v", eps[1].Metadata)
	}
}
