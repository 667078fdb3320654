package schema

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/trellismesh/trellis/internal/config"
)

// GatewayAPIGroup is the Kubernetes Gateway API's group.
const GatewayAPIGroup = "gateway.networking.k8s.io"

// Gateway API kinds. KubernetesGateway is the Gateway API's Gateway, not
// Istio's (Gateway).
var (
	KubernetesGateway = config.GroupKind{Group: GatewayAPIGroup, Kind: "Gateway"}
	HTTPRoute         = config.GroupKind{Group: GatewayAPIGroup, Kind: "HTTPRoute"}
	GRPCRoute         = config.GroupKind{Group: GatewayAPIGroup, Kind: "GRPCRoute"}
	TCPRoute          = config.GroupKind{Group: GatewayAPIGroup, Kind: "TCPRoute"}
	TLSRoute          = config.GroupKind{Group: GatewayAPIGroup, Kind: "TLSRoute"}
	ReferenceGrant    = config.GroupKind{Group: GatewayAPIGroup, Kind: "ReferenceGrant"}
)

// GatewayAPI returns the Gateway API kinds read from a cluster. Their specs
// are not istio.io/api messages: a Config carries the object's spec as a
// google.protobuf.Struct (its JSON form), which the translation to Istio's
// model will read. Nothing in the model reads them yet.
func GatewayAPI() Set {
	spec := func() proto.Message { return &structpb.Struct{} }
	v1 := []string{"v1"}
	return NewSet(
		Schema{KubernetesGateway, []string{"v1", "v1beta1"}, "gateways", spec},
		Schema{HTTPRoute, []string{"v1", "v1beta1"}, "httproutes", spec},
		Schema{GRPCRoute, v1, "grpcroutes", spec},
		Schema{TCPRoute, v1, "tcproutes", spec},
		Schema{TLSRoute, v1, "tlsroutes", spec},
		Schema{ReferenceGrant, []string{"v1", "v1beta1"}, "referencegrants", spec},
	)
}
