package model

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// DefaultMesh returns the mesh configuration defaults Istio applies.
func DefaultMesh() *meshconfig.MeshConfig {
	return &meshconfig.MeshConfig{
		TrustDomain:    "cluster.local",
		RootNamespace:  "istio-system",
		EnableAutoMtls: wrapBool(true),
		ConnectTimeout: durationpb.New(10e9),
		OutboundTrafficPolicy: &meshconfig.MeshConfig_OutboundTrafficPolicy{
			Mode: meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY,
		},
		DefaultServiceExportTo:         []string{"*"},
		DefaultVirtualServiceExportTo:  []string{"*"},
		DefaultDestinationRuleExportTo: []string{"*"},
		ProxyListenPort:                15001,
		ProxyInboundListenPort:         15006,
	}
}

func wrapBool(b bool) *wrapperspb.BoolValue { return wrapperspb.Bool(b) }
