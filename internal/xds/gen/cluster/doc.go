// Package cluster generates Envoy v3 CDS resources for sidecars, following
// the output of Istio's cluster builder (pilot/pkg/networking/core).
//
//	Scope.Services × ports ──► outbound|<port>||<host>      (+ one per DestinationRule subset)
//	   discovery type from resolution (EDS, STRICT_DNS, LOGICAL_DNS, ORIGINAL_DST)
//	   upstream protocol from the port (HTTP/2 for GRPC/HTTP2, downstream for sniffed)
//	   ──► ApplyTrafficPolicy: DestinationRule policy merged for port and subset
//	       (connection pool, outlier detection, load balancer, locality, TLS
//	       or auto mTLS, PROXY protocol)
//	ProxyInstances ──► inbound|<targetPort>||
//	fixed: BlackHoleCluster, PassthroughCluster, InboundPassthroughCluster
//
// Files follow Istio's split: cds.go builds outbound clusters and their
// metadata, cluster_inbound.go the inbound and fixed ones,
// cluster_traffic_policy.go applies traffic policy, cluster_tls.go the
// upstream TLS. Endpoints of DNS clusters come from endpoint.Assignment, so
// that CDS and EDS agree on endpoints and locality priorities.
//
// Upstream TLS (cluster_tls.go), as Istio's cluster builder: a
// DestinationRule tls block (merged per port and subset) wins — DISABLE
// plaintext, SIMPLE/MUTUAL origination (credentialName → SDS
// kubernetes://<name>[-cacert], only in rules with a workloadSelector;
// else files → SDS file-cert:/file-root:, system trust store when no CA;
// auto_sni/auto_san_validation when sni/subjectAltNames are left out),
// ISTIO_MUTUAL (SDS default + ROOTCA, SNI outbound_.<port>_.<subset>_.<host>
// unless set, SANs = the service's identities unless set, ALPN
// istio-peer-exchange,istio[,h2]). Without one, auto mTLS
// (meshConfig.enableAutoMtls, default on) builds the same ISTIO_MUTUAL
// context behind transport_socket_matches: "tlsMode-istio" for endpoints
// whose metadata envoy.transport_socket_match is {tlsMode: istio},
// "tlsMode-disabled" (raw_buffer) for the rest; not for mesh-external
// services, namespaces whose PeerAuthentication (namespace, else mesh) is
// DISABLE, or passthrough services unless every endpoint runs a proxy.
// Secure naming: a service's identities are its ServiceEntry
// subjectAltNames and spiffe://<trust domain>/ns/<ns>/sa/<sa> of its
// endpoints, each also in every trustDomainAliases domain. SDS references
// and their meaning for the proxy: package gen/mtls.
//
// Build, Outbound and ApplyTrafficPolicy are pure functions of a scope;
// nothing reachable from the snapshot is mutated.
package cluster
