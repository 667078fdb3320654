package cluster

import (
	"math"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	proxyprotocolv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/proxy_protocol/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds/gen/endpoint"
)

// target is everything traffic policy needs about the cluster it shapes.
type target struct {
	svc  *model.Service
	port model.Port
	// policy is the merged policy in force (model.MergeTrafficPolicy).
	policy *networking.TrafficPolicy
	// sni is Istio's default SNI for ISTIO_MUTUAL.
	sni string
	// drHasSelector: the DestinationRule has a workloadSelector (allows
	// credentialName on sidecars).
	drHasSelector bool
	// autoMTLSPolicy is the rule's own policy for the cluster (subset or
	// destination level), read for PASSTHROUGH when inferring auto mTLS.
	autoMTLSPolicy *networking.TrafficPolicy
}

// ApplyTrafficPolicy applies a traffic policy to an outbound cluster of
// svc/port/subset as Istio does: connection pool and circuit breakers, HTTP/2
// upgrade, outlier detection, load balancer (simple, consistent hash, slow
// start, locality), upstream TLS or auto mTLS, and PROXY protocol. policy is
// the merged policy in force for the cluster (see model.MergeTrafficPolicy);
// the DestinationRule itself is looked up in the scope for the settings
// that depend on it. HTTP protocol options already in c are kept and
// amended. The proxyless gRPC generator reuses this.
func ApplyTrafficPolicy(sc *model.Scope, c *clusterv3.Cluster, svc *model.Service, port model.Port, subset string, policy *networking.TrafficPolicy) {
	b := newBuilder(sc)
	w := &wrapper{c: c}
	if a := c.GetTypedExtensionProtocolOptions()[HTTPProtocolOptionsKey]; a != nil {
		hpo := &httpv3.HttpProtocolOptions{}
		if a.UnmarshalTo(hpo) == nil {
			w.hpo = hpo
		}
	}
	if c.CommonLbConfig == nil {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{}
	}
	dr := b.destinationRule(svc)
	own := dr.spec.GetTrafficPolicy()
	if subset != "" {
		own = nil
		for _, ss := range dr.spec.GetSubsets() {
			if ss.GetName() == subset {
				own = ss.GetTrafficPolicy()
			}
		}
	}
	b.applyTrafficPolicy(w, target{
		svc:            svc,
		port:           port,
		policy:         policy,
		sni:            sni(port.Number, subset, svc.Hostname),
		drHasSelector:  dr.spec.GetWorkloadSelector() != nil,
		autoMTLSPolicy: own,
	})
	w.build()
}

func (b *builder) applyTrafficPolicy(w *wrapper, t target) {
	pool := t.policy.GetConnectionPool()
	// HTTP/2 first, so that HTTP/2 pool settings land on the upgraded cluster.
	b.applyH2Upgrade(w, t.port, pool)
	b.applyConnectionPool(w, pool, t.policy.GetRetryBudget())
	b.applyOutlierDetection(w.c, t.policy.GetOutlierDetection())
	b.applyLoadBalancer(w.c, t.policy.GetLoadBalancer())
	b.applyTLS(w, t)
	applyProxyProtocol(w.c, t.policy.GetProxyProtocol())
	if w.c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		w.c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	}
}

// applyH2Upgrade: the rule's h2UpgradePolicy wins (UPGRADE upgrades any
// port: the user says it speaks HTTP), useClientProtocol never upgrades,
// otherwise the mesh policy upgrades declared HTTP ports only.
func (b *builder) applyH2Upgrade(w *wrapper, port model.Port, pool *networking.ConnectionPoolSettings) {
	if h := pool.GetHttp(); h != nil {
		if h.GetUseClientProtocol() {
			return
		}
		switch h.GetH2UpgradePolicy() {
		case networking.ConnectionPoolSettings_HTTPSettings_UPGRADE:
			setH2(w)
			return
		case networking.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
			return
		}
	}
	if port.Protocol.IsHTTP() && b.mesh.GetH2UpgradePolicy() == meshconfig.MeshConfig_UPGRADE {
		setH2(w)
	}
}

// defaultThresholds are Istio's circuit breakers: effectively unlimited,
// since Envoy's defaults (1024, 3 retries) cause 503s under pod churn.
func defaultThresholds() *clusterv3.CircuitBreakers_Thresholds {
	return &clusterv3.CircuitBreakers_Thresholds{
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining:     true,
	}
}

// applyConnectionPool maps connectionPool onto the cluster (nil: defaults).
// Zero means "unset" for the counters, as in Istio.
func (b *builder) applyConnectionPool(w *wrapper, pool *networking.ConnectionPoolSettings, budget *networking.TrafficPolicy_RetryBudget) {
	th := defaultThresholds()
	applyRetryBudget(th, budget)
	var idle, maxDuration *durationpb.Duration
	var maxRequestsPerConn, maxStreams uint32
	if h := pool.GetHttp(); h != nil {
		if h.GetHttp2MaxRequests() > 0 {
			th.MaxRequests = wrapperspb.UInt32(uint32(h.GetHttp2MaxRequests()))
		}
		if h.GetHttp1MaxPendingRequests() > 0 {
			th.MaxPendingRequests = wrapperspb.UInt32(uint32(h.GetHttp1MaxPendingRequests()))
		}
		if h.GetMaxRetries() > 0 {
			th.MaxRetries = wrapperspb.UInt32(uint32(h.GetMaxRetries()))
		}
		idle = cloneDuration(h.GetIdleTimeout())
		maxRequestsPerConn = uint32(h.GetMaxRequestsPerConnection())
		maxStreams = uint32(h.GetMaxConcurrentStreams())
	}
	w.c.ConnectTimeout = connectTimeout(b.mesh)
	if tcp := pool.GetTcp(); tcp != nil {
		if tcp.GetConnectTimeout() != nil {
			w.c.ConnectTimeout = cloneDuration(tcp.GetConnectTimeout())
		}
		if tcp.GetMaxConnections() > 0 {
			th.MaxConnections = wrapperspb.UInt32(uint32(tcp.GetMaxConnections()))
		}
		maxDuration = cloneDuration(tcp.GetMaxConnectionDuration())
		if idle == nil {
			idle = cloneDuration(tcp.GetIdleTimeout())
		}
	}
	setKeepalive(w.c, b.mesh.GetTcpKeepalive())
	setKeepalive(w.c, pool.GetTcp().GetTcpKeepalive())
	w.c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}

	if maxDuration != nil || idle != nil || maxRequestsPerConn > 0 || maxStreams > 0 {
		o := w.options()
		if o.CommonHttpProtocolOptions == nil {
			o.CommonHttpProtocolOptions = &core.HttpProtocolOptions{}
		}
		if idle != nil {
			o.CommonHttpProtocolOptions.IdleTimeout = idle
		}
		if maxRequestsPerConn > 0 {
			o.CommonHttpProtocolOptions.MaxRequestsPerConnection = wrapperspb.UInt32(maxRequestsPerConn)
		}
		if maxDuration != nil {
			o.CommonHttpProtocolOptions.MaxConnectionDuration = maxDuration
		}
		if h2 := o.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); h2 != nil && maxStreams > 0 {
			h2.MaxConcurrentStreams = wrapperspb.UInt32(maxStreams)
		}
	}
	if pool.GetHttp().GetUseClientProtocol() {
		setUseDownstream(w)
	}
}

// applyRetryBudget: Istio's defaults are 20% and 3 concurrent retries.
func applyRetryBudget(th *clusterv3.CircuitBreakers_Thresholds, budget *networking.TrafficPolicy_RetryBudget) {
	if budget == nil {
		return
	}
	percent := 20.0
	if budget.GetPercent() != nil {
		percent = budget.GetPercent().GetValue()
	}
	concurrency := uint32(3)
	if budget.GetMinRetryConcurrency() > 0 {
		concurrency = budget.GetMinRetryConcurrency()
	}
	th.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
		BudgetPercent:       &typev3.Percent{Value: percent},
		MinRetryConcurrency: wrapperspb.UInt32(concurrency),
	}
}

// setKeepalive turns on TCP keepalive (OS defaults) and overrides the
// fields ka sets; called with the mesh setting, then the rule's.
func setKeepalive(c *clusterv3.Cluster, ka *networking.ConnectionPoolSettings_TCPSettings_TcpKeepalive) {
	if ka == nil {
		return
	}
	if c.UpstreamConnectionOptions == nil {
		c.UpstreamConnectionOptions = &clusterv3.UpstreamConnectionOptions{TcpKeepalive: &core.TcpKeepalive{}}
	}
	k := c.UpstreamConnectionOptions.TcpKeepalive
	if ka.GetProbes() > 0 {
		k.KeepaliveProbes = wrapperspb.UInt32(ka.GetProbes())
	}
	if ka.GetTime() != nil {
		k.KeepaliveTime = wrapperspb.UInt32(uint32(ka.GetTime().GetSeconds()))
	}
	if ka.GetInterval() != nil {
		k.KeepaliveInterval = wrapperspb.UInt32(uint32(ka.GetInterval().GetSeconds()))
	}
}

// applyOutlierDetection maps outlierDetection. Success-rate ejection stays
// off. Each consecutive-error counter is enforced only when set above zero.
// The deprecated consecutiveErrors counts gateway errors only and turns off
// Envoy's default consecutive-5xx ejection, as Istio did while it was
// current; consecutive5xxErrors and consecutiveGatewayErrors, when set,
// take precedence. minHealthPercent becomes the healthy panic threshold
// (0 disables panic mode, Istio's default whenever outlier detection is on).
func (b *builder) applyOutlierDetection(c *clusterv3.Cluster, od *networking.OutlierDetection) {
	if od == nil {
		return
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}
	if n := od.GetConsecutiveErrors(); n > 0 { //nolint:staticcheck // deprecated field still accepted
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(uint32(n))
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(0)
	}
	if e := od.GetConsecutive_5XxErrors(); e != nil {
		out.Consecutive_5Xx = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(enforcing(e.GetValue()))
	}
	if e := od.GetConsecutiveGatewayErrors(); e != nil {
		out.ConsecutiveGatewayFailure = wrapperspb.UInt32(e.GetValue())
		out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(enforcing(e.GetValue()))
	}
	if od.GetInterval() != nil {
		out.Interval = cloneDuration(od.GetInterval())
	}
	if od.GetBaseEjectionTime() != nil {
		out.BaseEjectionTime = cloneDuration(od.GetBaseEjectionTime())
	}
	if od.GetMaxEjectionPercent() > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(od.GetMaxEjectionPercent()))
	}
	if od.GetSplitExternalLocalOriginErrors() {
		out.SplitExternalLocalOriginErrors = true
		if n := od.GetConsecutiveLocalOriginFailures().GetValue(); n > 0 {
			out.ConsecutiveLocalOriginFailure = wrapperspb.UInt32(n)
			out.EnforcingConsecutiveLocalOriginFailure = wrapperspb.UInt32(100)
		}
		out.EnforcingLocalOriginSuccessRate = wrapperspb.UInt32(0)
	}
	c.OutlierDetection = out
	if od.GetMinHealthPercent() >= 0 {
		c.CommonLbConfig.HealthyPanicThreshold = &typev3.Percent{Value: float64(od.GetMinHealthPercent())}
	}
}

func enforcing(n uint32) uint32 {
	if n > 0 {
		return 100
	}
	return 0
}

// applyLoadBalancer sets the load-balancing policy. Istio's default is
// LEAST_REQUEST; ORIGINAL_DST clusters always use CLUSTER_PROVIDED; a
// PASSTHROUGH policy turns the cluster into ORIGINAL_DST. Consistent hash
// picks RING_HASH or MAGLEV (the hash policies themselves go on routes).
// Locality settings: the priorities and weights of endpoints come from
// endpoint.Assignment; here the cluster gets locality-weighted balancing
// when distribute is set, or failover with outlier detection.
func (b *builder) applyLoadBalancer(c *clusterv3.Cluster, lb *networking.LoadBalancerSettings) {
	setting := endpoint.LocalityLBSetting(b.mesh.GetLocalityLbSetting(), lb.GetLocalityLbSetting())
	failover := c.OutlierDetection != nil && (len(setting.GetFailover()) > 0 || len(setting.GetFailoverPriority()) > 0)
	if failover || len(setting.GetDistribute()) > 0 {
		c.CommonLbConfig.LocalityConfigSpecifier = &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig_{
			LocalityWeightedLbConfig: &clusterv3.Cluster_CommonLbConfig_LocalityWeightedLbConfig{},
		}
	}
	if c.GetType() == clusterv3.Cluster_ORIGINAL_DST {
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		return
	}
	switch lb.GetSimple() {
	case networking.LoadBalancerSettings_RANDOM:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	case networking.LoadBalancerSettings_ROUND_ROBIN:
		c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
		if ss := slowStart(lb); ss != nil {
			c.LbConfig = &clusterv3.Cluster_RoundRobinLbConfig_{RoundRobinLbConfig: &clusterv3.Cluster_RoundRobinLbConfig{SlowStartConfig: ss}}
		}
	case networking.LoadBalancerSettings_PASSTHROUGH:
		c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		c.LoadAssignment = nil
		c.DnsLookupFamily, c.DnsRefreshRate, c.RespectDnsTtl = clusterv3.Cluster_AUTO, nil, false
	default: // LEAST_REQUEST, LEAST_CONN, unset
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		if ss := slowStart(lb); ss != nil {
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{SlowStartConfig: ss}}
		}
	}
	applyConsistentHash(c, lb.GetConsistentHash())
}

// slowStart maps warmup (or the older warmupDurationSecs). Aggression 1
// (linear) and a 10% minimum weight are the defaults; the runtime key is
// one no runtime layer can define, so the value is fixed, as in Istio.
func slowStart(lb *networking.LoadBalancerSettings) *clusterv3.Cluster_SlowStartConfig {
	if w := lb.GetWarmup(); w != nil {
		aggression, minPercent := 1.0, 10.0
		if w.GetAggression() != nil {
			aggression = w.GetAggression().GetValue()
		}
		if w.GetMinimumPercent() != nil {
			minPercent = w.GetMinimumPercent().GetValue()
		}
		return &clusterv3.Cluster_SlowStartConfig{
			SlowStartWindow:  cloneDuration(w.GetDuration()),
			Aggression:       &core.RuntimeDouble{DefaultValue: aggression, RuntimeKey: "("},
			MinWeightPercent: &typev3.Percent{Value: minPercent},
		}
	}
	if d := lb.GetWarmupDurationSecs(); d != nil {
		return &clusterv3.Cluster_SlowStartConfig{SlowStartWindow: cloneDuration(d)}
	}
	return nil
}

func applyConsistentHash(c *clusterv3.Cluster, ch *networking.LoadBalancerSettings_ConsistentHashLB) {
	if ch == nil {
		return
	}
	switch {
	case ch.GetMaglev() != nil:
		c.LbPolicy = clusterv3.Cluster_MAGLEV
		c.LbConfig = nil
		if n := ch.GetMaglev().GetTableSize(); n != 0 {
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(n)}}
		}
	case ch.GetRingHash() != nil:
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = nil
		if n := ch.GetRingHash().GetMinimumRingSize(); n != 0 {
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(n)}}
		}
	default: // the deprecated top-level minimumRingSize; 1024 is Envoy's default
		size := uint64(1024)
		if n := ch.GetMinimumRingSize(); n != 0 { //nolint:staticcheck // deprecated field still accepted
			size = n
		}
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(size)}}
	}
}

// applyProxyProtocol wraps the transport socket(s) in an upstream PROXY
// protocol socket (around raw_buffer when there is none).
func applyProxyProtocol(c *clusterv3.Cluster, pp *networking.TrafficPolicy_ProxyProtocol) {
	if pp == nil {
		return
	}
	wrap := func(inner *core.TransportSocket) *core.TransportSocket {
		return &core.TransportSocket{
			Name: "envoy.transport_sockets.upstream_proxy_protocol",
			ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: mustAny(&proxyprotocolv3.ProxyProtocolUpstreamTransport{
				Config:          &core.ProxyProtocolConfig{Version: core.ProxyProtocolConfig_Version(pp.GetVersion())},
				TransportSocket: inner,
			})},
		}
	}
	if c.TransportSocket == nil && len(c.TransportSocketMatches) == 0 {
		c.TransportSocket = wrap(rawBufferSocket())
		return
	}
	if c.TransportSocket != nil {
		c.TransportSocket = wrap(c.TransportSocket)
	}
	for _, m := range c.TransportSocketMatches {
		m.TransportSocket = wrap(m.TransportSocket)
	}
}

func cloneDuration(d *durationpb.Duration) *durationpb.Duration {
	if d == nil {
		return nil
	}
	return &durationpb.Duration{Seconds: d.GetSeconds(), Nanos: d.GetNanos()}
}
