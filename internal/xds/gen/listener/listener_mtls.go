package listener

import (
	"sort"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/mtls"
)

const tlsTransportSocket = "envoy.transport_sockets.tls"

// matchOption is one filter chain to build for an inbound port (Istio's
// FilterChainMatchOptions).
type matchOption struct {
	http      bool // HCM (else tcp_proxy)
	transport string
	alpn      []string
	// tls: the chain terminates mesh mTLS (DownstreamTlsContext).
	tls bool
}

// inboundMatchOptions lists the chains of an inbound port per protocol and
// PeerAuthentication mode, as Istio's getFilterChainMatchOptions:
//
//	         DISABLE                 PERMISSIVE                              STRICT
//	HTTP     HCM raw                 HCM mTLS(all istio ALPNs), HCM raw      HCM mTLS
//	TCP      tcp raw                 tcp mTLS(all istio ALPNs), tcp raw,     tcp mTLS
//	                                 tcp tls (plain TLS passed through)
//	sniffed  HCM raw(http ALPNs),    HCM mTLS(istio-http/*), HCM raw(http),  HCM mTLS(istio-http/*),
//	         tcp raw                 tcp mTLS(istio-peer-exchange, istio),   tcp mTLS
//	                                 tcp raw, tcp tls (plain TLS)
//
// A STRICT port has no raw_buffer chain: Envoy finds no chain for a
// plaintext connection to it and closes it before the application sees a
// byte.
func inboundMatchOptions(mode model.MTLSMode, lp listenerProtocol) []matchOption {
	raw, tls := transportRawBuffer, transportTLS
	switch lp {
	case lpHTTP:
		switch mode {
		case model.MTLSStrict:
			return []matchOption{{http: true, transport: tls, tls: true}}
		case model.MTLSPermissive:
			return []matchOption{
				{http: true, transport: tls, alpn: mtls.AllIstioMTLSALPNs(), tls: true},
				{http: true, transport: raw},
			}
		}
		return []matchOption{{http: true, transport: raw}}
	case lpAuto:
		switch mode {
		case model.MTLSStrict:
			return []matchOption{
				{http: true, transport: tls, alpn: mtls.MTLSHTTPALPNs(), tls: true},
				{transport: tls, tls: true},
			}
		case model.MTLSPermissive:
			return []matchOption{
				{http: true, transport: tls, alpn: mtls.MTLSHTTPALPNs(), tls: true},
				{http: true, transport: raw, alpn: httpALPNs()},
				{transport: tls, alpn: mtls.MTLSTCPALPNs(), tls: true},
				{transport: raw},
				{transport: tls},
			}
		}
		return []matchOption{
			{http: true, transport: raw, alpn: httpALPNs()},
			{transport: raw},
		}
	default:
		switch mode {
		case model.MTLSStrict:
			return []matchOption{{transport: tls, tls: true}}
		case model.MTLSPermissive:
			return []matchOption{
				{transport: tls, alpn: mtls.AllIstioMTLSALPNs(), tls: true},
				{transport: raw},
				{transport: tls},
			}
		}
		return []matchOption{{transport: raw}}
	}
}

// peerAuthn is the PeerAuthentication in force for the proxy's workload
// (its namespace and labels), computed once per build.
func (b *builder) peerAuthn() model.PeerAuthnPolicy {
	if b.peer == nil {
		p := b.snap.PeerAuthentication(b.proxy.Namespace, b.proxy.Labels)
		b.peer = &p
	}
	return *b.peer
}

// inboundTLSMode is the mode of an inbound port: PeerAuthentication for
// the workload's target port (0: the passthrough chains, workload mode).
//
// A proxy that announces no service account (node metadata
// SERVICE_ACCOUNT) has no identity: the CA issues it no certificate, and
// its endpoints carry tlsMode "disabled" so clients never send it mTLS.
// PERMISSIVE then means plaintext only (there is nothing to terminate mTLS
// with); STRICT keeps its TLS-only chains, so plaintext is still refused
// (fail closed). Istio has no such case: every pod has a service account.
func (b *builder) inboundTLSMode(targetPort uint32) model.MTLSMode {
	m := b.peerAuthn().ModeForPort(targetPort)
	if m == model.MTLSPermissive && b.proxy.ServiceAccount == "" {
		return model.MTLSDisable
	}
	return m
}

// passthroughPorts are the ports that get their own passthrough chains:
// 0 (every port no chain claims), then, as Istio's ForPassthrough, each
// port-level PeerAuthentication port no service instance serves, sorted.
func (b *builder) passthroughPorts(served []inboundChain) []uint32 {
	taken := map[uint32]bool{}
	for _, c := range served {
		taken[c.targetPort] = true
	}
	var extra []uint32
	for port := range b.peerAuthn().PerPort {
		if port != 0 && !taken[port] && port != b.inboundCapturePort() && port != b.outboundCapturePort() {
			extra = append(extra, port)
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i] < extra[j] })
	return append([]uint32{0}, extra...)
}

// downstreamTransportSocket is the transport socket of an inbound chain:
// nil (plaintext) unless the option terminates mesh mTLS.
func (b *builder) downstreamTransportSocket(mode model.MTLSMode, opt matchOption) *corev3.TransportSocket {
	if !opt.tls || (mode != model.MTLSStrict && mode != model.MTLSPermissive) {
		return nil
	}
	return &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: toAny(b.inboundTLSContext(opt.http))},
	}
}

// inboundTLSContext is Istio's BuildInboundTLS for ISTIO_MUTUAL: the
// workload certificate ("default") and the mesh roots ("ROOTCA") over SDS,
// a client certificate required and its URI SAN in the mesh trust domain or
// an alias, TLS 1.2 (meshMTLS.minProtocolVersion) to 1.3 with Istio's
// server ciphers (meshMTLS.cipherSuites), ALPN h2/http/1.1 (TCP chains put
// istio-peer-exchange first).
func (b *builder) inboundTLSContext(http bool) *tlsv3.DownstreamTlsContext {
	alpn := mtls.ALPNDownstreamTCP()
	if http {
		alpn = mtls.ALPNDownstreamHTTP()
	}
	ciphers := mtls.SupportedCiphers()
	if cs := b.mesh.GetMeshMTLS().GetCipherSuites(); len(cs) > 0 {
		ciphers = append([]string(nil), cs...)
	}
	return &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols: alpn,
			TlsParams: &tlsv3.TlsParameters{
				CipherSuites:              ciphers,
				TlsMinimumProtocolVersion: mtls.MinProtocolVersion(b.mesh),
				TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
			},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{mtls.SecretConfig(mtls.SecretDefault)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: mtls.TrustDomainMatchers(mtls.TrustDomains(b.mesh)),
					},
					ValidationContextSdsSecretConfig: mtls.SecretConfig(mtls.SecretRootCA),
				},
			},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	}
}
