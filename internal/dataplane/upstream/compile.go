package upstream

import (
	"errors"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/circuit"
)

// Compile validates an Envoy cluster and compiles it. Errors name the
// cluster and the field and are meant for the NACK's error_detail. The
// result still points into c through the opaque parts documented on
// Cluster (transport sockets, connection and protocol options), which
// must not be modified afterwards; once the owner has built from them it
// keeps Cluster.Retained, which holds nothing of c.
func Compile(c *clusterv3.Cluster) (*Cluster, error) {
	if c == nil {
		return nil, errors.New("nil cluster")
	}
	if c.GetName() == "" {
		return nil, errors.New("cluster: name must not be empty")
	}
	out, err := compile(c)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	return out, nil
}

func compile(c *clusterv3.Cluster) (*Cluster, error) {
	if err := pgv.Validate(c); err != nil {
		return nil, err
	}
	out := &Cluster{
		Name:                                c.GetName(),
		AltStatName:                         c.GetAltStatName(),
		ConnectTimeout:                      durationOr(c.GetConnectTimeout(), DefaultConnectTimeout),
		PerConnectionBufferLimit:            DefaultPerConnectionBufferLimit,
		TransportSocket:                     TransportSocket{Default: c.GetTransportSocket(), Matches: c.GetTransportSocketMatches()},
		ConnectionOptions:                   c.GetUpstreamConnectionOptions(),
		CloseConnectionsOnHostHealthFailure: c.GetCloseConnectionsOnHostHealthFailure(),
		IgnoreHealthOnHostRemoval:           c.GetIgnoreHealthOnHostRemoval(),
	}
	if v := c.GetPerConnectionBufferLimitBytes(); v != nil {
		out.PerConnectionBufferLimit = v.GetValue()
	}
	if err := compileDiscovery(c, out); err != nil {
		return nil, err
	}
	if err := compileLB(c, out); err != nil {
		return nil, err
	}
	if err := compileBreakers(c.GetCircuitBreakers(), out); err != nil {
		return nil, fmt.Errorf("circuit_breakers: %w", err)
	}
	if od := c.GetOutlierDetection(); od != nil {
		cfg, err := compileOutlier(od)
		if err != nil {
			return nil, fmt.Errorf("outlier_detection: %w", err)
		}
		out.Outlier = cfg
	}
	http, err := compileHTTP(c)
	if err != nil {
		return nil, err
	}
	out.HTTP = http
	return out, nil
}

// compileDiscovery reads the discovery type and what goes with it.
func compileDiscovery(c *clusterv3.Cluster, out *Cluster) error {
	if ct := c.GetClusterType(); ct != nil {
		return fmt.Errorf("cluster_type: custom cluster type %q is not supported", ct.GetName())
	}
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		out.Type = EDS
		out.EDSServiceName = c.GetEdsClusterConfig().GetServiceName()
		if out.EDSServiceName == "" {
			out.EDSServiceName = c.GetName()
		}
		return nil
	case clusterv3.Cluster_ORIGINAL_DST:
		out.Type = OriginalDst
		od := c.GetOriginalDstLbConfig()
		out.OriginalDst = OriginalDstOptions{
			UseHTTPHeader:        od.GetUseHttpHeader(),
			HTTPHeaderName:       od.GetHttpHeaderName(),
			UpstreamPortOverride: od.GetUpstreamPortOverride().GetValue(),
			CleanupInterval:      durationOr(c.GetCleanupInterval(), DefaultCleanupInterval),
		}
		if out.OriginalDst.HTTPHeaderName == "" {
			out.OriginalDst.HTTPHeaderName = DefaultOriginalDstHeader
		}
		if od.GetMetadataKey() != nil {
			return errors.New("original_dst_lb_config.metadata_key: not supported")
		}
		if c.GetLoadAssignment() != nil {
			return errors.New("load_assignment: ORIGINAL_DST clusters must have no load assignment configured")
		}
		return nil
	case clusterv3.Cluster_STATIC:
		out.Type = Static
	case clusterv3.Cluster_STRICT_DNS:
		out.Type = StrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		out.Type = LogicalDNS
	default:
		return fmt.Errorf("type: unknown discovery type %d", c.GetType())
	}
	dnsNames := out.Type != Static
	eps, err := endpoints(c.GetLoadAssignment(), dnsNames, NewInterner())
	if err != nil {
		return fmt.Errorf("load_assignment: %w", err)
	}
	if out.Type == LogicalDNS && (len(eps.Localities) != 1 || len(eps.Localities[0].Endpoints) != 1) {
		return errors.New("LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint")
	}
	out.LoadAssignment = eps
	if dnsNames {
		out.DNS = DNS{
			RefreshRate:  durationOr(c.GetDnsRefreshRate(), DefaultDNSRefreshRate),
			RespectTTL:   c.GetRespectDnsTtl(),
			LookupFamily: c.GetDnsLookupFamily(),
			Jitter:       durationOr(c.GetDnsJitter(), 0),
		}
		if f := c.GetDnsFailureRefreshRate(); f != nil {
			out.DNS.FailureRefreshBase = durationOr(f.GetBaseInterval(), 0)
			out.DNS.FailureRefreshMax = durationOr(f.GetMaxInterval(), 10*out.DNS.FailureRefreshBase)
		}
	}
	return nil
}

// compileBreakers reads circuit_breakers: the first thresholds of each
// priority win; Envoy's defaults fill what is unset.
func compileBreakers(cb *clusterv3.CircuitBreakers, out *Cluster) error {
	var seen, seenPerHost [circuit.NumPriorities]bool
	for p := range circuit.NumPriorities {
		out.Breakers[p] = circuit.DefaultThresholds()
		out.PerHostMaxConnections[p] = circuit.Unlimited
	}
	for i, t := range cb.GetThresholds() {
		p := circuit.Priority(t.GetPriority())
		if p >= circuit.NumPriorities {
			return fmt.Errorf("thresholds[%d].priority: unknown routing priority %d", i, t.GetPriority())
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		th := &out.Breakers[p]
		setLimit(&th.MaxConnections, t.GetMaxConnections())
		setLimit(&th.MaxPendingRequests, t.GetMaxPendingRequests())
		setLimit(&th.MaxRequests, t.GetMaxRequests())
		setLimit(&th.MaxRetries, t.GetMaxRetries())
		setLimit(&th.MaxConnectionPools, t.GetMaxConnectionPools())
		th.TrackRemaining = t.GetTrackRemaining()
		if rb := t.GetRetryBudget(); rb != nil {
			budget := &circuit.RetryBudget{Percent: 20, MinConcurrency: 3}
			if bp := rb.GetBudgetPercent(); bp != nil {
				budget.Percent = bp.GetValue()
			}
			if mc := rb.GetMinRetryConcurrency(); mc != nil {
				budget.MinConcurrency = mc.GetValue()
			}
			th.RetryBudget = budget
		}
	}
	for i, t := range cb.GetPerHostThresholds() {
		p := circuit.Priority(t.GetPriority())
		if p >= circuit.NumPriorities {
			return fmt.Errorf("per_host_thresholds[%d].priority: unknown routing priority %d", i, t.GetPriority())
		}
		if seenPerHost[p] {
			continue
		}
		seenPerHost[p] = true
		setLimit(&out.PerHostMaxConnections[p], t.GetMaxConnections())
	}
	return nil
}

func setLimit(dst *uint64, v *wrapperspb.UInt32Value) {
	if v != nil {
		*dst = uint64(v.GetValue())
	}
}

func durationOr(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}
