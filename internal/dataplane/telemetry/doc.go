// Package telemetry turns what the proxy observes into Istio's standard
// metrics (istio_requests_total, istio_request_duration_milliseconds,
// istio_request_bytes, istio_response_bytes, istio_tcp_*), with Istio's
// names, labels and buckets, so that existing dashboards work.
//
//	http.Observer ──Observe(Record)──┐
//	tcp.Observer  ──Connected/...────┼─► Metrics ─► private prometheus.Registry ─► Handler (/stats/prometheus)
//	CDS/EDS sets ──SetClusters/SetEndpoints (service and workload metadata,
//	                taken per resource and kept by version, not the messages)
//
// grpc_response_status is the grpc-status the response carried
// (Record.GRPCStatus: trailers, or a trailers-only response); without one,
// an HTTP error status maps to a gRPC status as Envoy's httpToGrpcStatus.
// CounterFunc adds the proxy's own counters (access log and tracing drops).
//
// Access logs (package accesslog) and tracing (package tracing) observe
// the same records, as further observers the connection manager builds
// from the HttpConnectionManager's access_log and tracing.
//
// Labels are resolved once per combination (direction, cluster, upstream
// host, response code, flags, ...) and the resolved counters and
// histograms are cached, so a request costs a few map look-ups and no
// label maps. A metadata update drops the cache.
//
// Destination workloads are resolved on demand, per cluster. Of each
// cluster and ClusterLoadAssignment the metrics keep its version, its
// service, and its endpoints that name a workload (istio.workload), encoded
// in one string per resource; no decoded message and no map. A cluster's
// map of workloads by upstream host is built on the first request or
// connection that needs it, and kept until an update changes that
// cluster's endpoints, so a sidecar that talks to few of its clusters
// holds few maps:
//
//	SetClusters/SetEndpoints ─► per resource: version, service, hosts (encoded)
//	                          └► metadata (atomic): services, cluster → clusterWorkloads{sources}
//	labels (cache miss, outbound) ─► clusterWorkloads.lookup ─► sync.Once: map host → workload
//
// Observe and the TCP observer run on many goroutines; the metadata is an
// immutable value swapped atomically, and each cluster's map is written
// once under its sync.Once and only read after.
package telemetry
