package mtls

import (
	"net/netip"
	"sort"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	meshconfig "istio.io/api/mesh/v1alpha1"
)

// SDS names (see the package documentation for what a proxy resolves).
const (
	// SDSCluster is the envoy_grpc cluster of every secret reference.
	SDSCluster = "sds-grpc"
	// SecretDefault is the workload's own certificate and key.
	SecretDefault = "default"
	// SecretRootCA is the mesh trust bundle.
	SecretRootCA = "ROOTCA"
	// SecretCACertSuffix turns a credentialName into its CA's name.
	SecretCACertSuffix = "-cacert"
)

// FileCertSecret names a certificate chain and key read from files.
func FileCertSecret(chain, key string) string { return "file-cert:" + chain + "~" + key }

// FileRootSecret names a CA bundle read from a file ("system": the host's
// trust store).
func FileRootSecret(ca string) string { return "file-root:" + ca }

// CredentialSecret is the SDS name of a credentialName: as written when it
// has a scheme (kubernetes://, configmap://, ...), else kubernetes://<name>.
func CredentialSecret(name string) string {
	if strings.Contains(name, "://") {
		return name
	}
	return "kubernetes://" + name
}

// SecretConfig references an SDS secret served by the proxy's own secret
// source, in istiod's exact form.
func SecretConfig(name string) *tlsv3.SdsSecretConfig {
	src := &core.ConfigSource{
		ConfigSourceSpecifier: &core.ConfigSource_ApiConfigSource{ApiConfigSource: &core.ApiConfigSource{
			ApiType:                   core.ApiConfigSource_GRPC,
			SetNodeOnFirstMessageOnly: true,
			TransportApiVersion:       core.ApiVersion_V3,
			GrpcServices: []*core.GrpcService{{
				TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: SDSCluster}},
			}},
		}},
		ResourceApiVersion: core.ApiVersion_V3,
	}
	if name == SecretDefault || name == SecretRootCA {
		// Workload certificates always come: wait for them.
		src.InitialFetchTimeout = durationpb.New(0)
	}
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: src}
}

// ALPN values. Functions return fresh slices: generated messages never
// share them.

// ALPNInMesh is what a client offers for ISTIO_MUTUAL (h2 appended for
// HTTP/2 clusters).
func ALPNInMesh() []string { return []string{"istio-peer-exchange", "istio"} }

// ALPNInMeshH2 is ALPNInMesh for HTTP/2 clusters.
func ALPNInMeshH2() []string { return []string{"istio-peer-exchange", "istio", "h2"} }

// ALPNDownstreamHTTP is what a server's mTLS context negotiates on HTTP
// chains.
func ALPNDownstreamHTTP() []string { return []string{"h2", "http/1.1"} }

// ALPNDownstreamTCP is what a server's mTLS context negotiates on TCP
// chains (metadata exchange first).
func ALPNDownstreamTCP() []string { return []string{"istio-peer-exchange", "h2", "http/1.1"} }

// MTLSHTTPALPNs match mTLS from a client sidecar that detected HTTP.
func MTLSHTTPALPNs() []string { return []string{"istio-http/1.0", "istio-http/1.1", "istio-h2"} }

// MTLSTCPALPNs match mTLS from a client sidecar that sent opaque TCP.
func MTLSTCPALPNs() []string { return []string{"istio-peer-exchange", "istio"} }

// AllIstioMTLSALPNs match any mTLS from a client sidecar.
func AllIstioMTLSALPNs() []string {
	return []string{"istio", "istio-peer-exchange", "istio-http/1.0", "istio-http/1.1", "istio-h2"}
}

// SupportedCiphers are Istio's server-side cipher suites for mesh mTLS
// (meshConfig.meshMTLS.cipherSuites replaces them).
func SupportedCiphers() []string {
	return []string{
		"ECDHE-ECDSA-AES256-GCM-SHA384",
		"ECDHE-RSA-AES256-GCM-SHA384",
		"ECDHE-ECDSA-AES128-GCM-SHA256",
		"ECDHE-RSA-AES128-GCM-SHA256",
		"AES256-GCM-SHA384",
		"AES128-GCM-SHA256",
	}
}

// TrustDomain is the mesh trust domain (default cluster.local).
func TrustDomain(mesh *meshconfig.MeshConfig) string {
	if td := mesh.GetTrustDomain(); td != "" {
		return td
	}
	return "cluster.local"
}

// TrustDomains are the trust domains a server accepts clients from: the
// mesh's, then trustDomainAliases, without empties and duplicates.
func TrustDomains(mesh *meshconfig.MeshConfig) []string {
	seen := map[string]bool{}
	var out []string
	for _, td := range append([]string{TrustDomain(mesh)}, mesh.GetTrustDomainAliases()...) {
		if td != "" && !seen[td] {
			seen[td] = true
			out = append(out, td)
		}
	}
	return out
}

// Identity is the SPIFFE ID of a service account.
func Identity(trustDomain, ns, sa string) string {
	return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa
}

// ExpandTrustDomains adds, for every SPIFFE ID of the form
// spiffe://<td>/ns/<ns>/sa/<sa>, the same ID in each alias trust domain
// (Istio's spiffe.ExpandWithTrustDomains). Other names are kept as they
// are. The result is sorted and deduplicated; nil for no names.
func ExpandTrustDomains(ids, aliases []string) []string {
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
		rest, ok := strings.CutPrefix(id, "spiffe://")
		if !ok {
			continue
		}
		parts := strings.Split(rest, "/")
		if len(parts) != 5 || parts[1] != "ns" || parts[3] != "sa" {
			continue
		}
		for _, td := range aliases {
			if td != "" {
				set[Identity(td, parts[2], parts[4])] = true
			}
		}
	}
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// SANMatchers matches each name exactly, typed by its form: URI for
// "scheme://..." (SPIFFE IDs), IP_ADDRESS for IP literals, DNS otherwise.
func SANMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	if len(sans) == 0 {
		return nil
	}
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(sans))
	for _, s := range sans {
		typ := tlsv3.SubjectAltNameMatcher_DNS
		if strings.Contains(s, "://") {
			typ = tlsv3.SubjectAltNameMatcher_URI
		} else if _, err := netip.ParseAddr(s); err == nil {
			typ = tlsv3.SubjectAltNameMatcher_IP_ADDRESS
		}
		out = append(out, &tlsv3.SubjectAltNameMatcher{
			SanType: typ,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return out
}

// TrustDomainMatchers accept any URI SAN in one of the trust domains:
// prefix "spiffe://<td>/".
func TrustDomainMatchers(tds []string) []*tlsv3.SubjectAltNameMatcher {
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(tds))
	for _, td := range tds {
		out = append(out, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + td + "/"}},
		})
	}
	return out
}

// MinProtocolVersion maps meshConfig.meshMTLS.minProtocolVersion (default
// TLS 1.2).
func MinProtocolVersion(mesh *meshconfig.MeshConfig) tlsv3.TlsParameters_TlsProtocol {
	if mesh.GetMeshMTLS().GetMinProtocolVersion() == meshconfig.MeshConfig_TLSConfig_TLSV1_3 {
		return tlsv3.TlsParameters_TLSv1_3
	}
	return tlsv3.TlsParameters_TLSv1_2
}
