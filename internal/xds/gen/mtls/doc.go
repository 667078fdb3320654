// Package mtls holds what the cluster and listener generators share about
// mesh TLS, and is the written contract between the control plane and the
// proxy's transport sockets: the SDS secret references the generated xDS
// carries, the ALPN values that tell mesh traffic apart, and how SPIFFE
// identities are matched. Values follow what Istio generates for Envoy.
//
// # SDS secret references
//
// Every certificate and trust bundle in generated TLS contexts is an
// SdsSecretConfig built by SecretConfig, exactly as istiod writes it:
//
//	name: <resource name>
//	sds_config:
//	  api_config_source:
//	    api_type: GRPC
//	    set_node_on_first_message_only: true
//	    transport_api_version: V3
//	    grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]
//	  resource_api_version: V3
//	  initial_fetch_timeout: 0s      (only for "default" and "ROOTCA")
//
// The control plane never serves secrets: "sds-grpc" names the proxy's own
// secret source (istio-agent's SDS socket in front of Envoy; in Trellis's
// proxy, its identity manager, with no gRPC stream and no cluster of that
// name in CDS). A proxy must resolve these resource names locally:
//
//	default                     the workload's certificate chain and key
//	                            (the SVID from the mesh CA), rotated in place
//	ROOTCA                      the mesh trust bundle (old and new roots
//	                            during rotation), for validating peers
//	file-cert:<chain>~<key>     a chain and key read from those files
//	                            (DestinationRule MUTUAL clientCertificate,
//	                            privateKey)
//	file-root:<ca>              a CA bundle read from the file <ca>;
//	                            file-root:system is the host's trust store
//	                            (SIMPLE/MUTUAL without caCertificates)
//	kubernetes://<name>         credentialName secrets (cert, key) and
//	kubernetes://<name>-cacert  their CA; names with another scheme
//	                            (configmap://...) are passed as written
//
// initial_fetch_timeout 0s on default/ROOTCA means: wait for the identity
// however long it takes (the listener or cluster stays warming), never
// serve without it.
//
// # ALPN
//
// A client sidecar sending ISTIO_MUTUAL offers ALPNInMesh
// (istio-peer-exchange, istio), plus h2 for HTTP/2 clusters. Its outbound
// HTTP path additionally rewrites the offered protocols to istio-http/1.0,
// istio-http/1.1 or istio-h2 (Envoy's istio ALPN filter) so the server can
// pick an HTTP chain without sniffing; servers match those values in
// filter_chain_match.application_protocols (MTLSHTTPALPNs,
// AllIstioMTLSALPNs, MTLSTCPALPNs), but a server's DownstreamTlsContext
// never lists "istio" itself: it negotiates h2/http/1.1 (plus
// istio-peer-exchange on TCP chains).
//
// # Identities
//
// Workload identities are spiffe://<trust-domain>/ns/<ns>/sa/<sa>.
// Servers accept a client whose certificate carries a URI SAN starting
// with spiffe://<td>/ for the mesh trust domain or any of
// meshConfig.trustDomainAliases (TrustDomainMatchers). Clients accept a
// server only if its URI SAN is one of the identities serving the service
// (secure naming), each expanded to every trust domain alias
// (ExpandTrustDomains). Matchers are typed (match_typed_subject_alt_names):
// URI for "scheme://" names, IP_ADDRESS for IP literals, DNS otherwise.
package mtls
