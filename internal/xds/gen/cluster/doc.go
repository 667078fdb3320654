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
// Build, Outbound and ApplyTrafficPolicy are pure functions of a scope;
// nothing reachable from the snapshot is mutated.
package cluster
