// Package grpc generates xDS for proxyless gRPC clients (node metadata
// GENERATOR=grpc), as Istio's grpcgen does. gRPC's xDS client asks for
// every resource by name:
//
//	LDS "reviews.default.svc.cluster.local:9080"  (the dial target)
//	  └─ API listener, HttpConnectionManager → RDS "outbound|9080||reviews…"
//	RDS "outbound|9080||reviews…"  one virtual host (domains "*") with the
//	  routes the sidecar route generator builds for that host and port
//	CDS "outbound|9080|v1|reviews…"  EDS clusters from the cluster generator
//	EDS same names, from the endpoint generator
//
// Everything is built with the sidecar generators and then reduced to what
// gRPC's xDS implementation accepts: per-route filter configs other than
// fault are dropped (gRPC rejects unknown ones), query-parameter matches are
// left to gRPC (it ignores such routes), retries with no attempts are
// removed (or, under a virtual host retry policy, emptied so as not to
// inherit it), transport sockets are removed (mTLS for proxyless clients comes
// with the identity work), and load-balancing policies gRPC lacks fall back
// to the nearest one it has (MAGLEV → RING_HASH, RANDOM → ROUND_ROBIN).
package grpc
