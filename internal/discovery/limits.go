package discovery

import "github.com/trellismesh/trellis/internal/xds/server"

// xdsLimits are the gRPC transport limits of both xDS ports
// (server.GRPCLimits: streams per connection, keepalive, handshake and
// header limits), with request messages up to maxXDSRequestBytes. On the
// secure port they follow the CA's own options and so override its 64 KiB
// message limit: delta requests carry initial_resource_versions and
// subscriptions of whole meshes; CSRs are still bounded by the CA
// (MaxCSRBytes) after decoding.
func xdsLimits() server.GRPCLimits {
	return server.GRPCLimits{MaxRecvMsgSize: maxXDSRequestBytes}
}
