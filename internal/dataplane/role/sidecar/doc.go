// Package sidecar wires the data-plane engine into the sidecar role: one
// xDS client feeding the cluster manager (CDS, EDS), the route tables
// (RDS) and the listener manager (LDS), whose filter chains use the tcp
// proxy and the HTTP connection manager; plus the admin endpoint.
//
//	xdsclient ──Apply(CDS set)──► upstream/manager.ApplyClusterSet, telemetry SetClusters
//	          ──Apply(EDS set)──► upstream/manager.ApplyEndpointSet, telemetry SetEndpoints
//	          ──Apply(RDS set)──► route.Compile (changed versions) ─► http.RouteTables
//	          ──Apply(LDS set)──► listener.Manager.UpdateSet
//	          (each component compiles what changed by version and keeps no decoded message;
//	          /config_dump decodes the client's serialized resources on demand)
//	                              filter chains: tcp_proxy ─► manager.Dial
//	                                             http_connection_manager ─► router ─► manager.RoundTrip
//	admin 127.0.0.1:15000  /ready /config_dump /clusters /xds_status /stats/prometheus
//	                       POST /drain_listeners[?inboundonly][&graceful] /healthcheck/fail|ok /quitquitquit
//	health :15021          /healthz/ready (503 DRAINING while terminating)
//	metrics :15020         /stats/prometheus: the proxy's metrics, then the application's
//	                       (AppMetricsURL, fetched per scrape; appmetrics.go)
//	                       /app-health/<container>/<livez|readyz|startupz>: the
//	                       application probes the injector rewrote (AppProbers,
//	                       ISTIO_KUBE_APP_PROBERS), run from inside the pod (apphealth.go)
//	explicit proxy         ExplicitProxyAddress: HTTP forward proxy for local mode
//	                       without root (explicit.go, docs/local-mode.md)
//
// Telemetry (telemetry.go): Istio metrics observe every request and tcp
// session; the access logs (telemetry/accesslog) and the tracer
// (telemetry/tracing, collectors dialled through the cluster manager) are
// shared by all connection managers (registry entries in Deps.Filters)
// and tcp proxies (tcp.Config.AccessLogs), flushed by one goroutine of Run;
// their drop and failure counters are on /stats/prometheus.
//
// Identity and secrets: with Config.Identity.CAAddress set, the identity
// manager (dataplane/identity) obtains and renews the workload certificate
// from the mesh CA, and readiness waits for it. The secret store
// (dataplane/secrets.Local, Secrets()) serves it as "default"/"ROOTCA"
// plus file-based secrets, and is given to the listener manager
// (downstream TLS) and the cluster manager (upstream TLS transports).
// Its metrics are on /stats/prometheus.
//
// xDS over mutual TLS: with Config.XDSServerName set, the xDS client uses
// xdsclient.MeshTLS over the same store (the workload certificate as
// client certificate, the control plane verified with ROOTCA for that
// name) and starts only once the first certificate has arrived. The
// listener manager's counters, TLS handshake failures by reason included,
// are on /stats/prometheus (listenermetrics.go), as are the connection
// managers' limit counters under Envoy's names (httpmetrics.go:
// envoy_http_downstream_cx_protocol_error, envoy_http2_*_flood, ...); the
// per-socket connection limit is Config.MaxConnections (the proxy's
// --max-connections, default listener.DefaultMaxConnections, 16384), and
// inbound metrics carry
// connection_security_policy and the principals of mutual TLS peers.
//
// A rejected resource is NACKed with the component's error and the last
// good configuration keeps serving.
//
// # Termination (drain.go)
//
// Run(ctx) ends gracefully when ctx is done (SIGTERM): readiness fails at
// once, inbound listeners are drained (listener.Manager.Drain: their
// handlers' listener.Drainer) but keep accepting, outbound listeners and
// the explicit proxy keep serving; after DrainDuration everything is
// closed and Run returns nil. Stop (/quitquitquit, a second signal) ends
// it at once. Components run on their own context so that they outlive
// ctx by the drain period.
package sidecar
