package upstream

import (
	"runtime"
	"testing"
	"time"

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
	set, err := endpoints(cla, false, NewInterner())
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

// decoded returns cla as a client has it: unmarshalled from the wire, so
// that no two assignments share a pointer.
func decoded(t *testing.T, cla *endpointv3.ClusterLoadAssignment) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	b, err := proto.Marshal(cla)
	if err != nil {
		t.Fatal(err)
	}
	out := &endpointv3.ClusterLoadAssignment{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// meshAssignment is an Istio-style assignment: every endpoint with its
// own workload metadata, tlsMode as given ("" for none).
func meshAssignment(t *testing.T, name string, tlsModes ...string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	lle := &endpointv3.LocalityLbEndpoints{Locality: &corev3.Locality{Region: "us-east1", Zone: "us-east1-b"}}
	for i, mode := range tlsModes {
		md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			"istio": {Fields: map[string]*structpb.Value{"workload": structpb.NewStringValue(name + ";default")}},
		}}
		if mode != "" {
			md.FilterMetadata[TransportSocketMatchKey] = &structpb.Struct{Fields: map[string]*structpb.Value{TLSModeKey: structpb.NewStringValue(mode)}}
		}
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "10.0.0." + string(rune('1'+i)), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 8080}}}}}},
			Metadata: md,
		})
	}
	return decoded(t, &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{lle}})
}

// TestInternerSharesSocketMatchMetadata: endpoints with equal transport
// socket match metadata, in one assignment or in two, share one Metadata;
// different metadata stays apart; and the compiled hosts hold nothing of
// the decoded messages: rewriting them after compilation changes no host.
func TestInternerSharesSocketMatchMetadata(t *testing.T) {
	in := NewInterner()
	claA := meshAssignment(t, "a", "istio", "istio", "disabled", "")
	claB := meshAssignment(t, "b", "istio")
	setA, err := in.Endpoints(claA)
	if err != nil {
		t.Fatal(err)
	}
	setB, err := in.Endpoints(claB)
	if err != nil {
		t.Fatal(err)
	}
	a, b := setA.Localities[0].Endpoints, setB.Localities[0].Endpoints
	if a[0].Metadata == nil || a[0].Metadata != a[1].Metadata || a[0].Metadata != b[0].Metadata {
		t.Fatalf("equal socket match metadata not shared: %p %p %p", a[0].Metadata, a[1].Metadata, b[0].Metadata)
	}
	if a[2].Metadata == nil || a[2].Metadata == a[0].Metadata {
		t.Fatalf("tlsMode disabled shares istio's metadata (%p)", a[2].Metadata)
	}
	if a[3].Metadata != nil {
		t.Fatalf("endpoint without socket match metadata got %v", a[3].Metadata)
	}
	if n := in.Len(); n != 2 {
		t.Errorf("interner holds %d values, want 2 (istio, disabled)", n)
	}
	decodedStruct := claA.GetEndpoints()[0].GetLbEndpoints()[0].GetMetadata().GetFilterMetadata()[TransportSocketMatchKey]
	if a[0].Metadata.GetFilterMetadata()[TransportSocketMatchKey] == decodedStruct {
		t.Fatal("the host's metadata is the decoded message's Struct")
	}
	if a[0].TLSMode != "istio" || a[1].TLSMode != "istio" || a[2].TLSMode != "disabled" || a[3].TLSMode != "" {
		t.Errorf("tlsModes %q %q %q %q", a[0].TLSMode, a[1].TLSMode, a[2].TLSMode, a[3].TLSMode)
	}

	// Rewrite every decoded message in place: values, maps, locality.
	for _, cla := range []*endpointv3.ClusterLoadAssignment{claA, claB} {
		for _, lle := range cla.GetEndpoints() {
			lle.Locality.Region, lle.Locality.Zone = "mutated", "mutated"
			for _, lbe := range lle.GetLbEndpoints() {
				if s := lbe.GetMetadata().GetFilterMetadata()[TransportSocketMatchKey]; s != nil {
					s.Fields[TLSModeKey].Kind = &structpb.Value_StringValue{StringValue: "mutated"}
					s.Fields["extra"] = structpb.NewBoolValue(true)
				}
				lbe.GetEndpoint().GetAddress().GetSocketAddress().Address = "192.0.2.1"
			}
		}
	}
	istio := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{TransportSocketMatchKey: {Fields: map[string]*structpb.Value{TLSModeKey: structpb.NewStringValue("istio")}}}}
	for i, ep := range append(a[:2:2], b[0]) {
		if !proto.Equal(ep.Metadata, istio) || ep.TLSMode != "istio" {
			t.Errorf("host %d changed with the decoded message: %v, tlsMode %q", i, ep.Metadata, ep.TLSMode)
		}
		if ep.Locality.Region != "us-east1" || ep.Locality.Zone != "us-east1-b" || ep.Address.Host[:7] != "10.0.0." {
			t.Errorf("host %d changed with the decoded message: %+v %s", i, ep.Locality, ep.Address.Host)
		}
	}
	if got := a[2].Metadata.GetFilterMetadata()[TransportSocketMatchKey].GetFields()[TLSModeKey].GetStringValue(); got != "disabled" {
		t.Errorf("tlsMode disabled became %q", got)
	}
}

// TestInternerForgetsUnusedMetadata: the table holds its values weakly,
// so metadata no compiled endpoint uses any more goes away.
func TestInternerForgetsUnusedMetadata(t *testing.T) {
	in := NewInterner()
	for _, mode := range []string{"m1", "m2", "m3"} {
		if _, err := in.Endpoints(meshAssignment(t, "c", mode)); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := in.Endpoints(meshAssignment(t, "c", "istio"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.Len() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("interner still holds %d values, want 1 (the one in use)", in.Len())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	again, err := in.Endpoints(meshAssignment(t, "d", "istio"))
	if err != nil {
		t.Fatal(err)
	}
	if again.Localities[0].Endpoints[0].Metadata != kept.Localities[0].Endpoints[0].Metadata {
		t.Error("metadata in use was forgotten")
	}
	runtime.KeepAlive(kept)
}
