package listener

import (
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/trellismesh/trellis/internal/xds/gen/jwt"
)

// inboundHTTPAuthn is the request authentication part of an inbound HCM's
// filter chain (package gen/jwt): the JWT filter of the
// RequestAuthentications selecting the proxy (namespace and labels, both
// in the generator cache key), with the key sets the snapshot carries.
// It goes before the RBAC filters, which read the verified payload.
func (b *builder) inboundHTTPAuthn() []*hcmv3.HttpFilter {
	res := jwt.Build(b.snap.RequestAuthentications(b.proxy.Namespace, b.proxy.Labels), b.snap.JWKS)
	if res.Filter == nil {
		return nil
	}
	return []*hcmv3.HttpFilter{res.Filter}
}
