package cluster

import (
	"errors"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
	"github.com/trellismesh/trellis/internal/xds/gen/mtls"
)

// ALPN a TLS-originating (SIMPLE/MUTUAL) cluster offers for HTTP/2; mesh
// ALPN comes from the mtls package.
const alpnH2 = "h2"

const (
	tlsSocketName       = "envoy.transport_sockets.tls"
	rawBufferSocketName = "envoy.transport_sockets.raw_buffer"
)

// applyTLS sets the upstream transport socket: the rule's TLS settings, or,
// with no TLS settings and auto mTLS on, ISTIO_MUTUAL for endpoints labelled
// tlsMode=istio and plaintext for the others (transport_socket_matches).
func (b *builder) applyTLS(w *wrapper, t target) {
	tls, auto := b.upstreamTLSSettings(t)
	ctx, err := b.tlsContext(w, t, tls)
	if err != nil {
		// Istio logs and leaves the cluster without TLS; so do we (the
		// validator rejects such rules before they get here).
		return
	}
	if ctx != nil {
		w.c.TransportSocket = &core.TransportSocket{
			Name:       tlsSocketName,
			ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
		}
	}
	// Headless (ORIGINAL_DST) clusters keep one socket: auto mTLS was only
	// chosen for them when every endpoint runs a proxy.
	if auto && w.c.GetType() != clusterv3.Cluster_ORIGINAL_DST && w.c.TransportSocket != nil {
		w.c.TransportSocketMatches = []*clusterv3.Cluster_TransportSocketMatch{
			{
				Name:            "tlsMode-" + endpoint.TLSModeIstio,
				Match:           &structpb.Struct{Fields: map[string]*structpb.Value{endpoint.TLSModeKey: structpb.NewStringValue(endpoint.TLSModeIstio)}},
				TransportSocket: w.c.TransportSocket,
			},
			{
				Name:            "tlsMode-" + endpoint.TLSModeDisabled,
				Match:           &structpb.Struct{},
				TransportSocket: rawBufferSocket(),
			},
		}
		w.c.TransportSocket = nil
	}
}

func rawBufferSocket() *core.TransportSocket {
	return &core.TransportSocket{
		Name:       rawBufferSocketName,
		ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})},
	}
}

// upstreamTLSSettings completes the rule's TLS settings (ISTIO_MUTUAL gets
// the default SNI and the service's identities), or infers ISTIO_MUTUAL for
// auto mTLS. auto reports the latter.
func (b *builder) upstreamTLSSettings(t target) (tls *networking.ClientTLSSettings, auto bool) {
	if tls := t.policy.GetTls(); tls != nil {
		if tls.GetMode() != networking.ClientTLSSettings_ISTIO_MUTUAL {
			return tls, false
		}
		sni := tls.GetSni()
		if sni == "" {
			sni = t.sni
		}
		sans := tls.GetSubjectAltNames()
		if sans == nil {
			sans = b.serviceAccounts(t.svc)
		}
		return &networking.ClientTLSSettings{Mode: networking.ClientTLSSettings_ISTIO_MUTUAL, SubjectAltNames: sans, Sni: sni}, false
	}
	autoMTLS := b.mesh.GetEnableAutoMtls() == nil || b.mesh.GetEnableAutoMtls().GetValue()
	if t.svc.MeshExternal || !autoMTLS || b.serviceMTLSDisabled(t) {
		return nil, false
	}
	return &networking.ClientTLSSettings{
		Mode:            networking.ClientTLSSettings_ISTIO_MUTUAL,
		SubjectAltNames: b.serviceAccounts(t.svc),
		Sni:             t.sni,
	}, true
}

// serviceMTLSDisabled is Istio's best-effort inference of the service's
// mTLS mode: passthrough services (or PASSTHROUGH policies) need every
// endpoint to run a proxy; then PeerAuthentication of the service's
// namespace, then of the mesh.
func (b *builder) serviceMTLSDisabled(t target) bool {
	snap := b.sc.Snapshot()
	if t.svc.Resolution == model.Passthrough || t.autoMTLSPolicy.GetLoadBalancer().GetSimple() == networking.LoadBalancerSettings_PASSTHROUGH {
		eps := snap.Endpoints(t.svc.Key())
		if len(eps) == 0 {
			return true
		}
		for _, ep := range eps {
			if ep.TLSMode == endpoint.TLSModeDisabled {
				return true
			}
		}
	}
	off, ok := b.nsMTLSOff[t.svc.Namespace]
	if !ok {
		off = snap.NamespaceMTLSMode(t.svc.Namespace) == model.MTLSDisable
		b.nsMTLSOff[t.svc.Namespace] = off
	}
	return off
}

// serviceAccounts returns the identities allowed to serve svc (secure
// naming), sorted: those the service declares (ServiceEntry
// subjectAltNames) and the SPIFFE IDs of its endpoints' service accounts in
// the mesh trust domain, each SPIFFE ID also in every trustDomainAliases
// domain (Istio's PushContext.ServiceAccounts).
func (b *builder) serviceAccounts(svc *model.Service) []string {
	if sans, ok := b.sans[svc.Key()]; ok {
		return sans
	}
	sans := b.computeServiceAccounts(svc)
	b.sans[svc.Key()] = sans
	return sans
}

func (b *builder) computeServiceAccounts(svc *model.Service) []string {
	td := mtls.TrustDomain(b.mesh)
	set := map[string]bool{}
	for _, sa := range svc.ServiceAccounts {
		set[sa] = true
	}
	for _, ep := range b.sc.Snapshot().Endpoints(svc.Key()) {
		if ep.ServiceAccount == "" {
			continue
		}
		if strings.HasPrefix(ep.ServiceAccount, "spiffe://") {
			set[ep.ServiceAccount] = true
			continue
		}
		ns := ep.Namespace
		if ns == "" {
			ns = svc.Namespace
		}
		set[mtls.Identity(td, ns, ep.ServiceAccount)] = true
	}
	ids := make([]string, 0, len(set))
	for sa := range set {
		ids = append(ids, sa)
	}
	return mtls.ExpandTrustDomains(ids, b.mesh.GetTrustDomainAliases())
}

var errMissingClientCert = errors.New("MUTUAL TLS needs clientCertificate and privateKey")

func (b *builder) tlsContext(w *wrapper, t target, tls *networking.ClientTLSSettings) (*tlsv3.UpstreamTlsContext, error) {
	if tls == nil {
		return nil, nil
	}
	mode := tls.GetMode()
	// credentialName on a sidecar is honoured only in rules with a
	// workloadSelector: otherwise every sidecar in scope would wait for a
	// secret most of them may not read. Istio then sends no TLS at all.
	if cred := tls.GetCredentialName(); cred != "" && !strings.HasPrefix(cred, "configmap://") &&
		b.proxy.Type == model.SidecarProxy && !t.drHasSelector &&
		(mode == networking.ClientTLSSettings_SIMPLE || mode == networking.ClientTLSSettings_MUTUAL) {
		return nil, nil
	}
	switch mode {
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		ctx := &tlsv3.UpstreamTlsContext{
			CommonTlsContext: defaultCommonTLSContext(),
			Sni:              tls.GetSni(),
		}
		ctx.CommonTlsContext.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{mtls.SecretConfig(mtls.SecretDefault)}
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: mtls.SANMatchers(tls.GetSubjectAltNames())},
				ValidationContextSdsSecretConfig: mtls.SecretConfig(mtls.SecretRootCA),
			},
		}
		if ctx.Sni == "" {
			ctx.Sni = w.c.Name
		}
		ctx.CommonTlsContext.AlpnProtocols = mtls.ALPNInMesh()
		if isH2(w) {
			ctx.CommonTlsContext.AlpnProtocols = mtls.ALPNInMeshH2()
		}
		return ctx, nil
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		return b.userTLSContext(w, t, tls, mode == networking.ClientTLSSettings_MUTUAL)
	}
	return nil, nil // DISABLE
}

// userTLSContext builds SIMPLE and MUTUAL origination: SNI and SAN checks
// as written (else auto_sni / auto_san_validation from the request host),
// ServiceEntry subjectAltNames when the rule names none, certificates from
// credentialName (SDS) or from files (file-cert/file-root SDS names; the
// system trust store when no CA is given).
func (b *builder) userTLSContext(w *wrapper, t target, tls *networking.ClientTLSSettings, mutual bool) (*tlsv3.UpstreamTlsContext, error) {
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: defaultCommonTLSContext(), Sni: tls.GetSni()}
	skipVerify := tls.GetInsecureSkipVerify().GetValue()
	autoSNI := tls.GetSni() == ""
	autoSAN := autoSNI && len(tls.GetSubjectAltNames()) == 0 && !skipVerify
	if autoSNI || autoSAN {
		o := w.options()
		if o.UpstreamHttpProtocolOptions == nil {
			o.UpstreamHttpProtocolOptions = &core.UpstreamHttpProtocolOptions{}
		}
		o.UpstreamHttpProtocolOptions.AutoSni = o.UpstreamHttpProtocolOptions.AutoSni || autoSNI
		o.UpstreamHttpProtocolOptions.AutoSanValidation = o.UpstreamHttpProtocolOptions.AutoSanValidation || autoSAN
	}
	sans := tls.GetSubjectAltNames()
	if len(sans) == 0 && t.svc.Source.Kind == schema.ServiceEntry {
		sans = b.serviceAccounts(t.svc)
	}
	cc := ctx.CommonTlsContext
	if cred := tls.GetCredentialName(); cred != "" {
		if mutual {
			cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{mtls.SecretConfig(mtls.CredentialSecret(cred))}
		}
		if !skipVerify {
			cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: mtls.SANMatchers(sans)},
					ValidationContextSdsSecretConfig: mtls.SecretConfig(mtls.CredentialSecret(cred + mtls.SecretCACertSuffix)),
				},
			}
		}
	} else {
		if mutual {
			if tls.GetClientCertificate() == "" || tls.GetPrivateKey() == "" {
				return nil, errMissingClientCert
			}
			cc.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{
				mtls.SecretConfig(mtls.FileCertSecret(tls.GetClientCertificate(), tls.GetPrivateKey())),
			}
		}
		ca := tls.GetCaCertificates()
		if ca == "" {
			ca = "system"
		}
		if skipVerify {
			cc.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{}}
		} else {
			vc := &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: mtls.SANMatchers(sans)}
			if crl := tls.GetCaCrl(); crl != "" {
				vc.Crl = &core.DataSource{Specifier: &core.DataSource_Filename{Filename: crl}}
			}
			cc.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         vc,
					ValidationContextSdsSecretConfig: mtls.SecretConfig(mtls.FileRootSecret(ca)),
				},
			}
		}
	}
	if d := b.mesh.GetTlsDefaults(); d != nil {
		if len(d.GetEcdhCurves()) > 0 {
			cc.TlsParams.EcdhCurves = append([]string(nil), d.GetEcdhCurves()...)
		}
		if len(d.GetCipherSuites()) > 0 {
			cc.TlsParams.CipherSuites = append([]string(nil), d.GetCipherSuites()...)
		}
	}
	if isH2(w) {
		cc.AlpnProtocols = []string{alpnH2}
	}
	return ctx, nil
}

func defaultCommonTLSContext() *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{TlsParams: &tlsv3.TlsParameters{
		TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2,
		TlsMaximumProtocolVersion: tlsv3.TlsParameters_TLSv1_3,
	}}
}
