package validation

import (
	"fmt"
	"math"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"
)

func validateDestinationRule(r *report, p fieldPath, namespace string, dr *networking.DestinationRule) {
	r.check(p.child("host"), wildcardDomainProblem(dr.Host))
	validateTrafficPolicy(r, p.child("trafficPolicy"), dr.TrafficPolicy)
	names := make(map[string]bool)
	for i, s := range dr.Subsets {
		sp := p.child("subsets").index(i)
		if s == nil {
			r.errorf(sp, "must not be null")
			continue
		}
		switch {
		case s.Name == "":
			r.errorf(sp.child("name"), "required")
		case !isDNS1123Label(s.Name):
			r.errorf(sp.child("name"), "invalid subset name %q: must be a DNS-1123 label", s.Name)
		case names[s.Name]:
			r.errorf(sp.child("name"), "duplicate subset name %q", s.Name)
		}
		names[s.Name] = true
		validateLabels(r, sp.child("labels"), s.Labels, false)
		validateTrafficPolicy(r, sp.child("trafficPolicy"), s.TrafficPolicy)
	}
	validateExportTo(r, p.child("exportTo"), namespace, dr.ExportTo, false, dr.WorkloadSelector != nil)
	validateWorkloadSelector(r, p.child("workloadSelector"), dr.WorkloadSelector)
}

// validateWorkloadSelector checks the matchLabels selector of
// DestinationRules and security policies. An empty selector selects every
// workload of the namespace, which is legal but probably a mistake.
func validateWorkloadSelector(r *report, p fieldPath, s *typev1beta1.WorkloadSelector) {
	if s == nil {
		return
	}
	validateSelectorLabels(r, p.child("matchLabels"), s.MatchLabels)
	if len(s.MatchLabels) == 0 {
		r.warnf(p, "workload selector without labels selects every workload in the namespace")
	}
}

func validateTrafficPolicy(r *report, p fieldPath, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	if tp.LoadBalancer == nil && tp.ConnectionPool == nil && tp.OutlierDetection == nil && tp.Tls == nil &&
		len(tp.PortLevelSettings) == 0 && tp.Tunnel == nil && tp.ProxyProtocol == nil && tp.RetryBudget == nil {
		r.errorf(p, "traffic policy must set at least one field")
		return
	}
	if tp.Tunnel != nil && tp.ProxyProtocol != nil {
		r.errorf(p.child("proxyProtocol"), "tunnel and proxyProtocol cannot both be set")
	}
	validateOutlierDetection(r, p.child("outlierDetection"), tp.OutlierDetection)
	validateConnectionPool(r, p.child("connectionPool"), tp.ConnectionPool)
	validateLoadBalancer(r, p.child("loadBalancer"), tp.LoadBalancer, tp.OutlierDetection)
	validateClientTLS(r, p.child("tls"), tp.Tls)
	validatePortLevelSettings(r, p.child("portLevelSettings"), tp.PortLevelSettings)
	if t := tp.Tunnel; t != nil {
		tunnel := p.child("tunnel")
		if t.Protocol != "" && t.Protocol != "CONNECT" && t.Protocol != "POST" {
			r.errorf(tunnel.child("protocol"), "invalid protocol %q: want \"CONNECT\" or \"POST\"", t.Protocol)
		}
		if fqdnProblem(t.TargetHost) != "" && !isIP(t.TargetHost) {
			r.errorf(tunnel.child("targetHost"), "%q is not a valid hostname or IP address", t.TargetHost)
		}
		r.check(tunnel.child("targetPort"), portProblem(t.TargetPort))
	}
	if pp := tp.ProxyProtocol; pp != nil {
		if _, ok := networking.TrafficPolicy_ProxyProtocol_VERSION_name[int32(pp.Version)]; !ok {
			r.errorf(p.child("proxyProtocol").child("version"), "invalid version %d", pp.Version)
		}
	}
	if rb := tp.RetryBudget; rb != nil {
		bp := p.child("retryBudget")
		if v := rb.Percent; v != nil && (v.GetValue() < 0 || v.GetValue() > 100) {
			r.errorf(bp.child("percent"), "percentage %v must be between 0 and 100", v.GetValue())
		}
		checkDuration(r, bp.child("budgetInterval"), rb.BudgetInterval)
	}
}

func validatePortLevelSettings(r *report, p fieldPath, settings []*networking.TrafficPolicy_PortTrafficPolicy) {
	seen := make(map[uint32]int)
	for i, s := range settings {
		sp := p.index(i)
		if s == nil {
			r.errorf(sp, "must not be null")
			continue
		}
		if s.Port == nil {
			r.errorf(sp.child("port"), "required")
		} else if r.check(sp.child("port").child("number"), portProblem(s.Port.Number)) {
			if first, dup := seen[s.Port.Number]; dup {
				r.warnf(sp.child("port").child("number"), "port %d is already configured by portLevelSettings[%d]; this entry is ignored", s.Port.Number, first)
			} else {
				seen[s.Port.Number] = i
			}
		}
		if s.LoadBalancer == nil && s.ConnectionPool == nil && s.OutlierDetection == nil && s.Tls == nil {
			r.errorf(sp, "port traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection or tls")
			continue
		}
		validateOutlierDetection(r, sp.child("outlierDetection"), s.OutlierDetection)
		validateConnectionPool(r, sp.child("connectionPool"), s.ConnectionPool)
		validateLoadBalancer(r, sp.child("loadBalancer"), s.LoadBalancer, s.OutlierDetection)
		validateClientTLS(r, sp.child("tls"), s.Tls)
	}
}

func validateOutlierDetection(r *report, p fieldPath, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	if o.ConsecutiveErrors != 0 { //nolint:staticcheck // deprecated but still served
		r.warnf(p.child("consecutiveErrors"), "deprecated; use consecutiveGatewayErrors or consecutive5xxErrors")
		if o.ConsecutiveErrors < 0 { //nolint:staticcheck
			r.errorf(p.child("consecutiveErrors"), "must not be negative")
		}
	}
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		r.errorf(p.child("consecutiveLocalOriginFailures"), "only takes effect with splitExternalLocalOriginErrors: true")
	}
	checkDuration(r, p.child("interval"), o.Interval)
	checkDuration(r, p.child("baseEjectionTime"), o.BaseEjectionTime)
	r.check(p.child("maxEjectionPercent"), percentProblem(int64(o.MaxEjectionPercent)))
	r.check(p.child("minHealthPercent"), percentProblem(int64(o.MinHealthPercent)))
	for i, c := range o.OutlierDetectionHttpErrorCodes {
		if c < 100 || c > 599 {
			r.errorf(p.child("outlierDetectionHttpErrorCodes").index(i), "HTTP status %d must be between 100 and 599", c)
		}
	}
}

func validateConnectionPool(r *report, p fieldPath, c *networking.ConnectionPoolSettings) {
	if c == nil {
		return
	}
	if c.Http == nil && c.Tcp == nil {
		r.errorf(p, "connection pool must set http or tcp")
		return
	}
	nonNegative := func(fp fieldPath, v int32) {
		if v < 0 {
			r.errorf(fp, "must not be negative")
		}
	}
	if h := c.Http; h != nil {
		hp := p.child("http")
		nonNegative(hp.child("http1MaxPendingRequests"), h.Http1MaxPendingRequests)
		nonNegative(hp.child("http2MaxRequests"), h.Http2MaxRequests)
		nonNegative(hp.child("maxRequestsPerConnection"), h.MaxRequestsPerConnection)
		nonNegative(hp.child("maxRetries"), h.MaxRetries)
		nonNegative(hp.child("maxConcurrentStreams"), h.MaxConcurrentStreams)
		checkDuration(r, hp.child("idleTimeout"), h.IdleTimeout)
		if h.H2UpgradePolicy == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE && h.UseClientProtocol {
			r.errorf(hp.child("useClientProtocol"), "cannot be true when h2UpgradePolicy is UPGRADE")
		}
		if ka := h.Http2KeepAlive; ka != nil {
			checkDuration(r, hp.child("http2KeepAlive").child("interval"), ka.Interval)
			checkDuration(r, hp.child("http2KeepAlive").child("timeout"), ka.Timeout)
		}
	}
	if t := c.Tcp; t != nil {
		tp := p.child("tcp")
		nonNegative(tp.child("maxConnections"), t.MaxConnections)
		checkDuration(r, tp.child("connectTimeout"), t.ConnectTimeout)
		checkDuration(r, tp.child("maxConnectionDuration"), t.MaxConnectionDuration)
		// An idle timeout of 0s disables it.
		if t.IdleTimeout != nil && t.IdleTimeout.AsDuration() != 0 {
			checkDuration(r, tp.child("idleTimeout"), t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			checkDuration(r, tp.child("tcpKeepalive").child("time"), ka.Time)
			checkDuration(r, tp.child("tcpKeepalive").child("interval"), ka.Interval)
		}
	}
}

const (
	// maxMaglevTableSize is Envoy's limit (the table size must be a prime
	// below it).
	maxMaglevTableSize = 5000011
	// maxRingSize is Envoy's limit on ring hash sizes.
	maxRingSize = 8 << 20
)

func validateLoadBalancer(r *report, p fieldPath, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := p.child("consistentHash")
		switch k := ch.HashKey.(type) {
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
			cookie := cp.child("httpCookie")
			if k.HttpCookie.GetName() == "" {
				r.errorf(cookie.child("name"), "required")
			}
			if ttl := k.HttpCookie.GetTtl(); ttl != nil && (ttl.CheckValid() != nil || ttl.AsDuration() < 0) {
				r.errorf(cookie.child("ttl"), "must be a non-negative duration")
			}
			for i, a := range k.HttpCookie.GetAttributes() {
				if a.GetName() == "" {
					r.errorf(cookie.child("attributes").index(i).child("name"), "required")
				}
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
			r.check(cp.child("httpHeaderName"), headerNameProblem(k.HttpHeaderName))
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
			if k.HttpQueryParameterName == "" {
				r.errorf(cp.child("httpQueryParameterName"), "must not be empty")
			}
		case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
			if !k.UseSourceIp {
				r.warnf(cp, "consistent hash has no hash key (useSourceIp is false); requests are spread randomly")
			}
		default:
			r.warnf(cp, "consistent hash has no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName); requests are spread randomly")
		}
		if ch.MinimumRingSize != 0 { //nolint:staticcheck // deprecated but still served
			r.warnf(cp.child("minimumRingSize"), "deprecated; use ringHash.minimumRingSize")
			if ch.HashAlgorithm != nil {
				r.errorf(cp.child("minimumRingSize"), "cannot be set together with ringHash or maglev")
			}
		}
		if rh := ch.GetRingHash(); rh != nil && rh.MinimumRingSize > maxRingSize {
			r.errorf(cp.child("ringHash").child("minimumRingSize"), "must be at most %d", maxRingSize)
		}
		if ml := ch.GetMaglev(); ml != nil {
			tp := cp.child("maglev").child("tableSize")
			switch {
			case ml.TableSize == 0:
				r.errorf(tp, "required")
			case ml.TableSize >= maxMaglevTableSize:
				r.errorf(tp, "must be less than %d", maxMaglevTableSize)
			case !isPrime(ml.TableSize):
				r.errorf(tp, "%d is not a prime number", ml.TableSize)
			}
		}
	}
	validateLocalityLB(r, p.child("localityLbSetting"), lb.LocalityLbSetting, outlier)
	if w := lb.Warmup; w != nil {
		wp := p.child("warmup")
		r.check(wp.child("duration"), durationProblem(w.Duration))
		if v := w.MinimumPercent; v != nil && (v.GetValue() < 0 || v.GetValue() > 100) {
			r.errorf(wp.child("minimumPercent"), "percentage %v must be between 0 and 100", v.GetValue())
		}
		if v := w.Aggression; v != nil && v.GetValue() < 1 {
			r.errorf(wp.child("aggression"), "must be at least 1")
		}
	}
	checkDuration(r, p.child("warmupDurationSecs"), lb.WarmupDurationSecs)
}

// isPrime matches Envoy's primality test for Maglev table sizes.
func isPrime(x uint64) bool {
	if x != 0 && x < 4 {
		return true
	}
	if x&1 == 0 {
		return false
	}
	limit := uint64(math.Sqrt(float64(x)))
	for f := uint64(3); f <= limit; f += 2 {
		if x%f == 0 {
			return false
		}
	}
	return true
}

// Topology labels that name a locality level; failover already covers them.
var localityLabels = map[string]bool{
	"topology.kubernetes.io/region": true,
	"topology.kubernetes.io/zone":   true,
	"topology.istio.io/subzone":     true,
}

func validateLocalityLB(r *report, p fieldPath, l *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if l == nil {
		return
	}
	if len(l.Distribute) > 0 && len(l.Failover) > 0 {
		r.errorf(p, "distribute and failover cannot both be set")
		return
	}
	if len(l.Failover) > 0 {
		for i, label := range l.FailoverPriority {
			if localityLabels[label] {
				r.errorf(p.child("failoverPriority").index(i), "topology label %q cannot be used together with failover", label)
			}
		}
	}
	var from []string
	for i, d := range l.Distribute {
		dp := p.child("distribute").index(i)
		from = append(from, d.GetFrom())
		var total uint64
		for _, loc := range sortedKeys(d.GetTo()) {
			w := d.GetTo()[loc]
			if w < 1 || w > 100 {
				r.errorf(dp.child("to").key(loc), "weight %d must be between 1 and 100", w)
			}
			total += uint64(w)
		}
		if total != 100 {
			r.errorf(dp.child("to"), "weights add up to %d; they must add up to 100", total)
		}
		r.check(dp.child("to"), localitiesProblem(sortedKeys(d.GetTo())))
	}
	r.check(p.child("distribute"), localitiesProblem(from))
	if (len(l.Failover) > 0 || len(l.FailoverPriority) > 0) && outlier == nil {
		r.warnf(p, "failover only happens with outlierDetection configured")
	}
	for i, f := range l.Failover {
		fp := p.child("failover").index(i)
		switch {
		case f.GetFrom() == f.GetTo():
			r.errorf(fp, "from and to must be different regions")
		case strings.Contains(f.GetFrom(), "/") || strings.Contains(f.GetTo(), "/"):
			r.errorf(fp, "failover is between regions; zones and subzones cannot be named")
		case strings.Contains(f.GetFrom(), "*") || strings.Contains(f.GetTo(), "*"):
			r.errorf(fp, "regions must not contain the wildcard \"*\"")
		}
	}
}

// localitiesProblem checks "region/zone/subzone" localities: no empty parts,
// at most one trailing "*" wildcard, and no locality covered by another.
func localitiesProblem(localities []string) string {
	type zone map[string]bool
	regions := map[string]map[string]zone{}
	for _, loc := range localities {
		if n := strings.Count(loc, "*"); n > 1 || n == 1 && !strings.HasSuffix(loc, "*") {
			return fmt.Sprintf("locality %q: the wildcard \"*\" may only appear once, at the end", loc)
		}
		if _, all := regions["*"]; all {
			return fmt.Sprintf("locality %q overlaps with an earlier one", loc)
		}
		parts := strings.SplitN(loc, "/", 3)
		for _, part := range parts {
			if part == "" {
				return fmt.Sprintf("locality %q has an empty region, zone or subzone", loc)
			}
		}
		overlap := fmt.Sprintf("locality %q overlaps with an earlier one", loc)
		region := parts[0]
		zones, haveRegion := regions[region]
		switch len(parts) {
		case 1:
			if haveRegion {
				return overlap
			}
			regions[region] = map[string]zone{"*": {"*": true}}
		case 2:
			if haveRegion && (zones["*"] != nil || zones[parts[1]] != nil) {
				return overlap
			}
			if !haveRegion {
				zones = map[string]zone{}
				regions[region] = zones
			}
			zones[parts[1]] = zone{"*": true}
		case 3:
			if haveRegion && zones["*"] != nil {
				return overlap
			}
			if !haveRegion {
				zones = map[string]zone{}
				regions[region] = zones
			}
			z := zones[parts[1]]
			if z["*"] || z[parts[2]] {
				return overlap
			}
			if z == nil {
				z = zone{}
				zones[parts[1]] = z
			}
			z[parts[2]] = true
		}
	}
	return ""
}

// validateClientTLS checks the TLS settings a sidecar uses towards a service.
func validateClientTLS(r *report, p fieldPath, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	if t.GetInsecureSkipVerify().GetValue() {
		switch t.Mode {
		case networking.ClientTLSSettings_SIMPLE:
			if t.CaCertificates != "" || t.CredentialName != "" || len(t.SubjectAltNames) > 0 {
				r.errorf(p.child("insecureSkipVerify"), "caCertificates, credentialName and subjectAltNames cannot be set when insecureSkipVerify is true")
			}
		case networking.ClientTLSSettings_MUTUAL:
			if t.CaCertificates != "" || len(t.SubjectAltNames) > 0 {
				r.errorf(p.child("insecureSkipVerify"), "caCertificates and subjectAltNames cannot be set when insecureSkipVerify is true")
			}
		}
	}
	if (t.Mode == networking.ClientTLSSettings_SIMPLE || t.Mode == networking.ClientTLSSettings_MUTUAL) && t.CredentialName != "" {
		// The certificates come from the credential.
		if t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CaCrl != "" {
			r.errorf(p.child("credentialName"), "clientCertificate, privateKey, caCertificates and caCrl cannot be set together with credentialName")
		}
		return
	}
	if t.Mode == networking.ClientTLSSettings_MUTUAL {
		if t.ClientCertificate == "" {
			r.errorf(p.child("clientCertificate"), "required for MUTUAL TLS (or set credentialName)")
		}
		if t.PrivateKey == "" {
			r.errorf(p.child("privateKey"), "required for MUTUAL TLS (or set credentialName)")
		}
	}
}
