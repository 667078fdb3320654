package pgv

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// fuzzTypes are the xDS resource types FuzzValidate decodes into, chosen
// by the first input byte.
var fuzzTypes = []func() proto.Message{
	func() proto.Message { return &clusterv3.Cluster{} },
	func() proto.Message { return &routev3.RouteConfiguration{} },
	func() proto.Message { return &listenerv3.Listener{} },
	func() proto.Message { return &endpointv3.ClusterLoadAssignment{} },
}

// FuzzValidate decodes arbitrary bytes into an xDS resource and checks
// that Validate and ValidateAll agree with the generated code. Seeds are
// the generated configuration.
func FuzzValidate(f *testing.F) {
	for _, m := range corpus(f) {
		for i, nf := range fuzzTypes {
			if nf().ProtoReflect().Descriptor() == m.ProtoReflect().Descriptor() {
				b, err := proto.Marshal(m)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(append([]byte{byte(i)}, b...))
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		m := fuzzTypes[int(data[0])%len(fuzzTypes)]()
		if err := proto.Unmarshal(data[1:], m); err != nil {
			return
		}
		if d := disagreement(m); d != "" {
			t.Errorf("%s: %s", m.ProtoReflect().Descriptor().FullName(), d)
		}
	})
}
