// Package proxy implements `trellis proxy`, the data-plane command group.
// Flags and environment are parsed here, once, into the data-plane packages'
// typed configurations; each subcommand lives in its own file:
//
//	trellis proxy iptables   install (or --clean, or --dry-run) the sidecar's
//	                         traffic capture rules: Istio's istio-iptables /
//	                         istio-init, same flags and environment variables;
//	                         see internal/dataplane/capture
//	trellis proxy sidecar    run the sidecar (role/sidecar); the first SIGTERM
//	                         drains for --drain-duration, a second exits at once;
//	                         --exit-on-zero-active-connections (or
//	                         EXIT_ON_ZERO_ACTIVE_CONNECTIONS): after
//	                         --minimum-drain-duration (MINIMUM_DRAIN_DURATION),
//	                         exit once no connection is left instead;
//	                         --explicit-proxy, --app-metrics-url (or
//	                         ISTIO_PROMETHEUS_ANNOTATIONS); --ca-address (or
//	                         CA_ADDR), --ca-root-cert, --bootstrap-token,
//	                         --trust-domain: the workload identity from the
//	                         mesh CA (dataplane/identity); none when empty
//	trellis proxy wait       poll the readiness URL until 200 (pilot-agent wait);
//	                         exit 1 with the last error after --timeoutSeconds
//
// Errors name the flag (and the environment variable, if the value came from
// one).
package proxy
