// Package tracing is the proxy's distributed tracing: Envoy's
// HttpConnectionManager.tracing with the envoy.tracers.opentelemetry
// provider, W3C trace context and B3 propagation, spans exported over
// OTLP/gRPC.
//
//	HttpConnectionManager.tracing ──Tracer.Compile──► *Filter (error → NACK)
//	   the connection manager builds it from its registry (Tracer.Factory under TypeURL),
//	   places it first in the chain and hands it every record (Observe)
//
//	request ─► Filter: Extract (traceparent+tracestate │ b3 │ x-b3-*) ─► sample ─► new span id
//	           ─► Record.TraceID/SpanID/ParentSpanID/TraceSampled ─► Inject (W3C + B3) ─► next
//	record  ─► Filter.Observe: sampled? ─► OTLP span ─► exporter queue (bounded; overflow dropped, counted)
//	Tracer.Run ── every FlushInterval (5 s) or a full batch ──► TraceService/Export per collector
//
// Sampling: x-envoy-force-trace samples; otherwise a propagated decision
// is honoured (W3C flags, B3 sampled/flags, also a bare b3: 0|1|d);
// otherwise client_sampling applies to requests with x-client-trace-id,
// random_sampling to the rest, then overall_sampling (Envoy's defaults:
// 100%). The span joins the incoming trace (same trace id, the caller's
// span as parent) or starts one; x-request-id is left alone. Upstream
// requests carry traceparent (and the received tracestate) and the B3
// headers x-b3-traceid/spanid/parentspanid/sampled; a received single b3
// header is rewritten.
//
// Spans: named by the route's decorator operation (Istio's
// "host:port/*"), else authority + path; SERVER on a sidecar's inbound
// side, CLIENT outbound; Envoy's tag names as attributes (http.method,
// http.url cut at max_path_tag_length, http.status_code, response_flags,
// upstream_cluster, peer.address, guid:x-request-id, grpc.status_code,
// error), plus literal and request_header custom tags (other kinds are
// skipped); resource service.name from the provider's service_name.
//
// Collectors: grpc_service.envoy_grpc (dialled through Config.Dial, the
// cluster manager) or google_grpc target_uri, plaintext; one gRPC channel
// per collector and service name, shared by every connection manager,
// closed when Run ends. Not supported (compile errors): other tracers,
// OTLP/HTTP, sampler and exporter extensions, TLS credentials and initial
// metadata; spawn_upstream_span and verbose are ignored.
package tracing
