// Package endpoint generates Envoy v3 EDS resources (ClusterLoadAssignment)
// for sidecars, following Istio's output.
//
//	names ──ParseClusterName──► service, port, subset ──► endpoints of the
//	service (subset labels, endpoint port)
//	   ──► LocalityLbEndpoints grouped by region/zone/subzone, weighted
//	   ──► locality load balancing relative to the proxy (distribute
//	       weights, failover priorities) when the DestinationRule asks for it
//
// Build answers EDS requests. Assignment is the shared building block: the
// cluster generator uses it for the inline load_assignment of DNS clusters,
// so CDS and EDS agree on endpoints, metadata and locality priorities.
//
// Everything here is a pure function of a *model.Scope; nothing is cached
// and nothing reachable from the snapshot is mutated.
package endpoint
