package listener

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/trellismesh/trellis/internal/xds/gen/authz"
	"github.com/trellismesh/trellis/internal/xds/gen/mtls"
)

// authzFilters returns the workload's RBAC filters (package gen/authz),
// built once per generation from the AuthorizationPolicies selecting the
// proxy (namespace and labels, both in the generator cache key) and the
// mesh trust domains and extension providers (the providers' services
// are looked up in the snapshot).
func (b *builder) authzFilters() *authz.Filters {
	if b.authz == nil {
		f := authz.Build(
			b.snap.AuthorizationPolicies(b.proxy.Namespace, b.proxy.Labels),
			authz.Options{
				TrustDomains:       mtls.TrustDomains(b.mesh),
				ExtensionProviders: b.mesh.GetExtensionProviders(),
				LookupCluster:      b.lookupCluster, // tracing.go
			},
		)
		b.authz = &f
	}
	return b.authz
}

// inboundHTTPCustomAuthz is the CUSTOM policies' ext_authz part of an
// inbound HCM's filter chain, placed before request authentication.
func (b *builder) inboundHTTPCustomAuthz() []*hcmv3.HttpFilter {
	return b.authzFilters().CustomHTTP
}

// inboundHTTPAuthz is the RBAC part of an inbound HCM's filter chain, in
// front of every other HTTP filter (after the HCM's path normalisation).
func (b *builder) inboundHTTPAuthz() []*hcmv3.HttpFilter {
	return b.authzFilters().HTTP
}

// inboundTCPFilters is an inbound TCP chain's stack: the RBAC network
// filters, then the tcp_proxy.
func (b *builder) inboundTCPFilters(tp *tcpv3.TcpProxy) []*listenerv3.Filter {
	return append(append([]*listenerv3.Filter(nil), b.authzFilters().TCP...), b.tcpNetworkFilters(tp)...)
}
