package model

import networking "istio.io/api/networking/v1alpha3"

// PortTrafficPolicy returns the part of policy that applies to a port. A
// matching portLevelSettings entry replaces connectionPool, loadBalancer,
// outlierDetection and tls wholesale: fields it omits take their defaults,
// not the destination-level values (Istio's documented semantics). The bool
// reports whether a port-level entry matched. Port 0 means "no port".
//
// The result shares sub-messages with policy; callers must not mutate it.
func PortTrafficPolicy(policy *networking.TrafficPolicy, port uint32) (*networking.TrafficPolicy, bool) {
	if policy == nil || port == 0 {
		return policy, false
	}
	for _, p := range policy.GetPortLevelSettings() {
		if p.GetPort() != nil && p.GetPort().GetNumber() == port {
			return &networking.TrafficPolicy{
				ConnectionPool:   p.GetConnectionPool(),
				LoadBalancer:     p.GetLoadBalancer(),
				OutlierDetection: p.GetOutlierDetection(),
				Tls:              p.GetTls(),
			}, true
		}
	}
	return policy, false
}

// MergeTrafficPolicy returns the traffic policy in force for the cluster of
// one port and subset ("" for none) of a DestinationRule, merged as Istio
// does: the destination-level policy (with its port-level settings for the
// port applied) is overridden field by field by the subset's policy (with
// its own port-level settings applied; a subset port-level match replaces
// all four port-level fields). A nil rule gives nil.
//
// The result shares sub-messages with dr; callers must not mutate it.
func MergeTrafficPolicy(dr *networking.DestinationRule, subset string, port uint32) *networking.TrafficPolicy {
	top, _ := PortTrafficPolicy(dr.GetTrafficPolicy(), port)
	if subset == "" {
		return top
	}
	var sp *networking.TrafficPolicy
	for _, ss := range dr.GetSubsets() {
		if ss.GetName() == subset {
			sp = ss.GetTrafficPolicy()
			break
		}
	}
	if sp == nil {
		return top
	}
	sp, portLevel := PortTrafficPolicy(sp, port)
	if top == nil {
		return sp
	}
	merged := &networking.TrafficPolicy{
		ConnectionPool:   top.GetConnectionPool(),
		LoadBalancer:     top.GetLoadBalancer(),
		OutlierDetection: top.GetOutlierDetection(),
		Tls:              top.GetTls(),
		Tunnel:           top.GetTunnel(),
		ProxyProtocol:    top.GetProxyProtocol(),
		RetryBudget:      top.GetRetryBudget(),
	}
	if sp.ConnectionPool != nil || portLevel {
		merged.ConnectionPool = sp.ConnectionPool
	}
	if sp.OutlierDetection != nil || portLevel {
		merged.OutlierDetection = sp.OutlierDetection
	}
	if sp.LoadBalancer != nil || portLevel {
		merged.LoadBalancer = sp.LoadBalancer
	}
	if sp.Tls != nil || portLevel {
		merged.Tls = sp.Tls
	}
	if sp.Tunnel != nil {
		merged.Tunnel = sp.Tunnel
	}
	if sp.ProxyProtocol != nil {
		merged.ProxyProtocol = sp.ProxyProtocol
	}
	if sp.RetryBudget != nil {
		merged.RetryBudget = sp.RetryBudget
	}
	return merged
}
