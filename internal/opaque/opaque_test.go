package opaque

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// An Any whose type is not linked marshals by type only, and parses back;
// linked types keep their content.
func TestUnlinkedAny(t *testing.T) {
	const url = "type.googleapis.com/example.unlinked.v1.Thing"
	c := &clusterv3.Cluster{
		Name: "c1",
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"unlinked": {TypeUrl: url, Value: []byte{0x0a, 0x01, 'x'}},
		},
		TransportSocket: &corev3.TransportSocket{Name: "raw"},
	}
	if _, err := protojson.Marshal(c); err == nil {
		t.Fatal("the global registry resolved an unlinked type; the test proves nothing")
	}
	r := &Resolver{}
	b, err := protojson.MarshalOptions{Resolver: r}.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), url) || !strings.Contains(string(b), `"c1"`) {
		t.Errorf("marshalled %s", b)
	}
	var back clusterv3.Cluster
	if err := (protojson.UnmarshalOptions{Resolver: r, DiscardUnknown: true}).Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.GetName() != "c1" || back.GetTypedExtensionProtocolOptions()["unlinked"].GetTypeUrl() != url {
		t.Errorf("round trip: %v", &back)
	}
	if _, err := r.FindMessageByURL("type.googleapis.com/not a name"); err == nil {
		t.Error("invalid name resolved")
	}
}
