// Package endpoint generates Envoy v3 EDS resources (ClusterLoadAssignment)
// for sidecars, following Istio's output.
//
//	names ──ParseClusterName──► service, port, subset ──► endpoints of the
//	service (subset labels, endpoint port)
//	   ──► LocalityLbEndpoints grouped by region/zone/subzone, weighted
//	   ──► locality load balancing relative to the proxy (distribute
//	       weights, failover priorities) when the DestinationRule asks for it
//
// Endpoints of workloads that run a proxy carry filter_metadata
// envoy.transport_socket_match {tlsMode: <mode>} (Istio's contract with
// auto mTLS cluster transport_socket_matches): the registry sets the mode
// from the WorkloadEntry label security.istio.io/tlsMode, else "istio" when
// the entry has a serviceAccount (Istio's getTLSModeFromWorkloadEntry), else
// "disabled". The metadata is left out — the client then sends plaintext —
// when the mode is "disabled", when the DestinationRule in force sets a
// TLS mode other than ISTIO_MUTUAL for the cluster, or when
// PeerAuthentication turns mTLS off for that workload port (DISABLE;
// model.Snapshot.PeerAuthentication).
//
// Each lb_endpoint's health_status is its model.Endpoint's Health:
// HEALTHY, UNHEALTHY or DRAINING (the registry decides which endpoints
// are sent at all; see registry/kube). Locality weights count every
// endpoint sent; proxies skip the unhealthy and draining ones.
//
// Build answers EDS requests. Assignment is the shared building block: the
// cluster generator uses it for the inline load_assignment of DNS clusters,
// so CDS and EDS agree on endpoints, metadata and locality priorities.
//
// Everything here is a pure function of a *model.Scope; nothing is cached
// and nothing reachable from the snapshot is mutated.
package endpoint
