package model

import (
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
)

// Traffic-policy parts, distinguishable by their values.
func lb(s networking.LoadBalancerSettings_SimpleLB) *networking.LoadBalancerSettings {
	return &networking.LoadBalancerSettings{LbPolicy: &networking.LoadBalancerSettings_Simple{Simple: s}}
}

func tlsMode(m networking.ClientTLSSettings_TLSmode) *networking.ClientTLSSettings {
	return &networking.ClientTLSSettings{Mode: m}
}

func pool(maxConns int32) *networking.ConnectionPoolSettings {
	return &networking.ConnectionPoolSettings{Tcp: &networking.ConnectionPoolSettings_TCPSettings{MaxConnections: maxConns}}
}

func outlier(minHealth int32) *networking.OutlierDetection {
	return &networking.OutlierDetection{MinHealthPercent: minHealth}
}

func tunnel(host string) *networking.TrafficPolicy_TunnelSettings {
	return &networking.TrafficPolicy_TunnelSettings{TargetHost: host, TargetPort: 8443}
}

func portLevel(port uint32, p *networking.TrafficPolicy_PortTrafficPolicy) *networking.TrafficPolicy_PortTrafficPolicy {
	p.Port = &networking.PortSelector{Number: port}
	return p
}

const (
	roundRobin   = networking.LoadBalancerSettings_ROUND_ROBIN
	leastRequest = networking.LoadBalancerSettings_LEAST_REQUEST
	random       = networking.LoadBalancerSettings_RANDOM
	mutual       = networking.ClientTLSSettings_ISTIO_MUTUAL
	simple       = networking.ClientTLSSettings_SIMPLE
	disable      = networking.ClientTLSSettings_DISABLE
)

func TestPortTrafficPolicy(t *testing.T) {
	top := &networking.TrafficPolicy{
		LoadBalancer:     lb(roundRobin),
		Tls:              tlsMode(mutual),
		ConnectionPool:   pool(100),
		OutlierDetection: outlier(10),
		Tunnel:           tunnel("egress"),
		PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{
			{LoadBalancer: lb(random)}, // no port selector: never matches
			portLevel(9080, &networking.TrafficPolicy_PortTrafficPolicy{LoadBalancer: lb(leastRequest)}),
			portLevel(9080, &networking.TrafficPolicy_PortTrafficPolicy{LoadBalancer: lb(random)}), // shadowed
			portLevel(443, &networking.TrafficPolicy_PortTrafficPolicy{Tls: tlsMode(simple), ConnectionPool: pool(5)}),
		},
	}
	for _, tc := range []struct {
		name      string
		policy    *networking.TrafficPolicy
		port      uint32
		want      *networking.TrafficPolicy
		same      bool // the input is returned as is
		portLevel bool
	}{
		{name: "nil policy", policy: nil, port: 9080, want: nil, same: true},
		{name: "port 0", policy: top, port: 0, same: true},
		{name: "no port-level entry", policy: top, port: 8080, same: true},
		{name: "port-level entry replaces wholesale: omitted fields are not inherited", policy: top, port: 9080, portLevel: true,
			want: &networking.TrafficPolicy{LoadBalancer: lb(leastRequest)}},
		{name: "another port", policy: top, port: 443, portLevel: true,
			want: &networking.TrafficPolicy{Tls: tlsMode(simple), ConnectionPool: pool(5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := proto.Clone(top)
			got, portLevel := PortTrafficPolicy(tc.policy, tc.port)
			if portLevel != tc.portLevel {
				t.Errorf("port-level = %v, want %v", portLevel, tc.portLevel)
			}
			if tc.same {
				if got != tc.policy {
					t.Errorf("got %v, want the input itself", got)
				}
			} else if !proto.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if !proto.Equal(top, before) {
				t.Error("PortTrafficPolicy mutated its input")
			}
		})
	}
}

func TestMergeTrafficPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		dr     *networking.DestinationRule
		subset string
		port   uint32
		want   *networking.TrafficPolicy
	}{
		{name: "nil rule", dr: nil, subset: "v1", port: 80, want: nil},
		{name: "rule without policy", dr: &networking.DestinationRule{Host: "h"}, port: 80, want: nil},
		{
			name: "no subset: destination level",
			dr:   &networking.DestinationRule{TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin)}},
			port: 80,
			want: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin)},
		},
		{
			name: "no subset: destination port level applied",
			dr: &networking.DestinationRule{TrafficPolicy: &networking.TrafficPolicy{
				LoadBalancer:      lb(roundRobin),
				Tls:               tlsMode(mutual),
				PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{portLevel(80, &networking.TrafficPolicy_PortTrafficPolicy{LoadBalancer: lb(random)})},
			}},
			port: 80,
			want: &networking.TrafficPolicy{LoadBalancer: lb(random)},
		},
		{
			name: "unknown subset: destination level",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin)},
				Subsets:       []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: lb(random)}}},
			},
			subset: "v9", port: 80,
			want: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin)},
		},
		{
			name: "subset without policy: destination level",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin)},
				Subsets:       []*networking.Subset{{Name: "v1"}},
			},
			subset: "v1", port: 80,
			want: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin)},
		},
		{
			name: "subset policy alone",
			dr: &networking.DestinationRule{
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{Tls: tlsMode(disable)}}},
			},
			subset: "v1", port: 80,
			want: &networking.TrafficPolicy{Tls: tlsMode(disable)},
		},
		{
			name: "subset policy alone, its port level applied",
			dr: &networking.DestinationRule{
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{
					Tls:               tlsMode(disable),
					PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{portLevel(80, &networking.TrafficPolicy_PortTrafficPolicy{ConnectionPool: pool(1)})},
				}}},
			},
			subset: "v1", port: 80,
			want: &networking.TrafficPolicy{ConnectionPool: pool(1)},
		},
		{
			name: "subset overrides field by field",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{
					LoadBalancer: lb(roundRobin), Tls: tlsMode(mutual), ConnectionPool: pool(100),
					OutlierDetection: outlier(10), Tunnel: tunnel("top"),
				},
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{
					LoadBalancer: lb(leastRequest), OutlierDetection: outlier(50),
				}}},
			},
			subset: "v1", port: 80,
			want: &networking.TrafficPolicy{
				LoadBalancer: lb(leastRequest), Tls: tlsMode(mutual), ConnectionPool: pool(100),
				OutlierDetection: outlier(50), Tunnel: tunnel("top"),
			},
		},
		{
			name: "subset tunnel and proxy protocol override",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{Tunnel: tunnel("top"), LoadBalancer: lb(roundRobin)},
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{
					Tunnel:        tunnel("subset"),
					ProxyProtocol: &networking.TrafficPolicy_ProxyProtocol{Version: networking.TrafficPolicy_ProxyProtocol_V2},
				}}},
			},
			subset: "v1", port: 80,
			want: &networking.TrafficPolicy{
				Tunnel: tunnel("subset"), LoadBalancer: lb(roundRobin),
				ProxyProtocol: &networking.TrafficPolicy_ProxyProtocol{Version: networking.TrafficPolicy_ProxyProtocol_V2},
			},
		},
		{
			name: "subset port level replaces the four port-level fields, even with nil",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{
					LoadBalancer: lb(roundRobin), Tls: tlsMode(mutual), ConnectionPool: pool(100), OutlierDetection: outlier(10),
					Tunnel: tunnel("top"),
				},
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{
					Tls:               tlsMode(simple), // shadowed by the port-level entry
					PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{portLevel(80, &networking.TrafficPolicy_PortTrafficPolicy{LoadBalancer: lb(random)})},
				}}},
			},
			subset: "v1", port: 80,
			want: &networking.TrafficPolicy{LoadBalancer: lb(random), Tunnel: tunnel("top")},
		},
		{
			name: "subset port level for another port: subset level applies",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin), Tls: tlsMode(mutual)},
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{
					Tls:               tlsMode(simple),
					PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{portLevel(443, &networking.TrafficPolicy_PortTrafficPolicy{LoadBalancer: lb(random)})},
				}}},
			},
			subset: "v1", port: 80,
			want: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin), Tls: tlsMode(simple)},
		},
		{
			name: "destination port level, then subset fields",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{
					LoadBalancer: lb(roundRobin), Tls: tlsMode(mutual),
					PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{portLevel(80, &networking.TrafficPolicy_PortTrafficPolicy{ConnectionPool: pool(7)})},
				},
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{LoadBalancer: lb(leastRequest)}}},
			},
			subset: "v1", port: 80,
			// The destination port-level entry dropped tls and the load balancer; the subset sets the latter again.
			want: &networking.TrafficPolicy{ConnectionPool: pool(7), LoadBalancer: lb(leastRequest)},
		},
		{
			name: "port 0 ignores port-level settings",
			dr: &networking.DestinationRule{
				TrafficPolicy: &networking.TrafficPolicy{
					LoadBalancer:      lb(roundRobin),
					PortLevelSettings: []*networking.TrafficPolicy_PortTrafficPolicy{portLevel(80, &networking.TrafficPolicy_PortTrafficPolicy{ConnectionPool: pool(7)})},
				},
				Subsets: []*networking.Subset{{Name: "v1", TrafficPolicy: &networking.TrafficPolicy{Tls: tlsMode(simple)}}},
			},
			subset: "v1", port: 0,
			want: &networking.TrafficPolicy{LoadBalancer: lb(roundRobin), Tls: tlsMode(simple)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before proto.Message
			if tc.dr != nil {
				before = proto.Clone(tc.dr)
			}
			got := MergeTrafficPolicy(tc.dr, tc.subset, tc.port)
			// Compare without the port-level settings a returned input may still carry.
			if got != nil && tc.want != nil && len(got.GetPortLevelSettings()) > 0 {
				got = proto.Clone(got).(*networking.TrafficPolicy)
				got.PortLevelSettings = nil
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("MergeTrafficPolicy =\n %v\nwant\n %v", got, tc.want)
			}
			if tc.dr != nil && !proto.Equal(tc.dr, before) {
				t.Error("MergeTrafficPolicy mutated the rule")
			}
		})
	}
}
