package sidecar

import (
	"log/slog"

	"github.com/trellismesh/trellis/internal/dataplane/http/filter"
	rbacfilter "github.com/trellismesh/trellis/internal/dataplane/http/filter/rbac"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/rbac"
	rbacnet "github.com/trellismesh/trellis/internal/dataplane/rbac/network"
	tcpextauthz "github.com/trellismesh/trellis/internal/dataplane/tcp/extauthz"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
)

// authzFilters are the authorization filters of the sidecar's chains and
// their counters, kept by Envoy stat name and exported on
// /stats/prometheus with Istio's stat tags (telemetry.RegisterEnvoyCounters):
//
//	envoy_tcp_rbac{authz_enforce_result="allowed|denied"}        network RBAC
//	envoy_tcp_rbac{authz_dry_run_action,authz_dry_run_result}    dry-run policies
//	envoy_http_rbac{...}                                         HTTP RBAC, the same labels
//	envoy_tcp_rbac_istio_ext_authz_{authz_dry_run_result}        connections a CUSTOM rule selects (or not)
//	envoy_ext_authz_tcp_{total,ok,denied,error,failure_mode_allowed,disabled,cx_closed}
type authzFilters struct {
	stats *rbac.Counters
	// network are the network RBAC and ext_authz filters.
	network listener.Registry
	// http is the HTTP RBAC filter with the counters (it overrides the
	// connection manager's built-in one).
	http filter.Registry
}

// newAuthzFilters builds the filters' factories and registers their
// counters with metrics. principal is the proxy's identity ("" without
// one), sent to ext_authz services as the destination principal.
func newAuthzFilters(metrics *telemetry.Metrics, clusters *manager.Manager, principal string, log *slog.Logger) (*authzFilters, error) {
	stats := &rbac.Counters{}
	if err := metrics.RegisterEnvoyCounters(stats); err != nil {
		return nil, err
	}
	return &authzFilters{
		stats: stats,
		network: listener.Registry{
			rbacnet.TypeURL:     rbacnet.Filters{Stats: stats},
			tcpextauthz.TypeURL: tcpextauthz.Filters{Upstream: clusters, Stats: stats, LocalPrincipal: principal, Logger: log},
		},
		http: filter.Registry{rbacfilter.TypeURL: rbacfilter.Factory{Stats: stats}},
	}, nil
}
