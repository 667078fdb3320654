package upstream

import (
	"errors"
	"fmt"
	"math"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/common/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	maglevv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	randomv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/random/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/dataplane/pgv"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/lb"
)

// compileLB reads lb_policy (or load_balancing_policy), its lb_config and
// common_lb_config.
func compileLB(c *clusterv3.Cluster, out *Cluster) error {
	if c.GetLbSubsetConfig() != nil {
		return errors.New("lb_subset_config: subset load balancing is not supported")
	}
	policy := c.GetLbPolicy()
	if out.Type == OriginalDst {
		if policy != clusterv3.Cluster_CLUSTER_PROVIDED || c.GetLoadBalancingPolicy() != nil {
			return fmt.Errorf("cluster: LB policy %s is not valid for Cluster type ORIGINAL_DST. "+
				"Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'", policy)
		}
		return nil
	}
	cfg := lb.DefaultConfig(lb.RoundRobin)
	common := c.GetCommonLbConfig()
	if t := common.GetHealthyPanicThreshold(); t != nil {
		cfg.PanicThreshold = uint32(math.Round(t.GetValue()))
	}
	cfg.LocalityWeighted = common.GetLocalityWeightedLbConfig() != nil
	cfg.UseHostnameForHashing = common.GetConsistentHashingLbConfig().GetUseHostnameForHashing()

	switch {
	case c.GetLoadBalancingPolicy() != nil:
		if err := compileTypedLB(c.GetLoadBalancingPolicy(), &cfg, out); err != nil {
			return fmt.Errorf("load_balancing_policy: %w", err)
		}
	case policy == clusterv3.Cluster_ROUND_ROBIN:
		cfg.Policy = lb.RoundRobin
		out.SlowStart = slowStart(c.GetRoundRobinLbConfig().GetSlowStartConfig())
	case policy == clusterv3.Cluster_LEAST_REQUEST:
		cfg.Policy = lb.LeastRequest
		lr := c.GetLeastRequestLbConfig()
		leastRequest(&cfg, lr.GetChoiceCount(), lr.GetActiveRequestBias())
		out.SlowStart = slowStart(lr.GetSlowStartConfig())
	case policy == clusterv3.Cluster_RANDOM:
		cfg.Policy = lb.Random
	case policy == clusterv3.Cluster_RING_HASH:
		cfg.Policy = lb.RingHash
		rh := c.GetRingHashLbConfig()
		ringSizes(&cfg, rh.GetMinimumRingSize(), rh.GetMaximumRingSize())
		if rh.GetHashFunction() == clusterv3.Cluster_RingHashLbConfig_MURMUR_HASH_2 {
			cfg.HashFunction = lb.MurmurHash2
		}
	case policy == clusterv3.Cluster_MAGLEV:
		cfg.Policy = lb.Maglev
		if ts := c.GetMaglevLbConfig().GetTableSize(); ts != nil {
			cfg.MaglevTableSize = ts.GetValue()
		}
	case policy == clusterv3.Cluster_CLUSTER_PROVIDED:
		return fmt.Errorf("cluster manager: cluster provided LB specified but cluster '%s' did not provide one. "+
			"Check cluster documentation.", c.GetName())
	case policy == clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG:
		return errors.New("lb_policy: LOAD_BALANCING_POLICY_CONFIG needs load_balancing_policy")
	default:
		return fmt.Errorf("lb_policy: unknown policy %d", policy)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	out.LB = cfg
	return nil
}

// compileTypedLB takes the first policy of load_balancing_policy that is
// one of Envoy's built-in balancers, as Envoy takes the first it knows.
func compileTypedLB(p *clusterv3.LoadBalancingPolicy, cfg *lb.Config, out *Cluster) error {
	var names []string
	for i, pol := range p.GetPolicies() {
		tc := pol.GetTypedExtensionConfig().GetTypedConfig()
		names = append(names, tc.GetTypeUrl())
		msg, ok := typedPolicy(tc)
		if !ok {
			continue
		}
		if err := anypb.UnmarshalTo(tc, msg, proto.UnmarshalOptions{}); err != nil {
			return fmt.Errorf("policies[%d]: %w", i, err)
		}
		if err := pgv.Validate(msg); err != nil {
			return fmt.Errorf("policies[%d]: %w", i, err)
		}
		switch m := msg.(type) {
		case *roundrobinv3.RoundRobin:
			cfg.Policy = lb.RoundRobin
			localityConfig(cfg, m.GetLocalityLbConfig())
			out.SlowStart = typedSlowStart(m.GetSlowStartConfig())
		case *leastrequestv3.LeastRequest:
			cfg.Policy = lb.LeastRequest
			leastRequest(cfg, m.GetChoiceCount(), m.GetActiveRequestBias())
			localityConfig(cfg, m.GetLocalityLbConfig())
			cfg.FullScan = m.GetSelectionMethod() == leastrequestv3.LeastRequest_FULL_SCAN ||
				m.GetEnableFullScan().GetValue() //nolint:staticcheck // deprecated, still honoured
			out.SlowStart = typedSlowStart(m.GetSlowStartConfig())
		case *randomv3.Random:
			cfg.Policy = lb.Random
			localityConfig(cfg, m.GetLocalityLbConfig())
		case *ringhashv3.RingHash:
			cfg.Policy = lb.RingHash
			ringSizes(cfg, m.GetMinimumRingSize(), m.GetMaximumRingSize())
			if m.GetHashFunction() == ringhashv3.RingHash_MURMUR_HASH_2 {
				cfg.HashFunction = lb.MurmurHash2
			}
			cfg.LocalityWeighted = m.GetLocalityWeightedLbConfig() != nil
			cfg.UseHostnameForHashing = m.GetUseHostnameForHashing() //nolint:staticcheck // deprecated, still honoured
			if ch := m.GetConsistentHashingLbConfig(); ch != nil {
				cfg.UseHostnameForHashing = ch.GetUseHostnameForHashing()
			}
		case *maglevv3.Maglev:
			cfg.Policy = lb.Maglev
			if ts := m.GetTableSize(); ts != nil {
				cfg.MaglevTableSize = ts.GetValue()
			}
			cfg.LocalityWeighted = m.GetLocalityWeightedLbConfig() != nil
			cfg.UseHostnameForHashing = m.GetConsistentHashingLbConfig().GetUseHostnameForHashing()
		}
		return nil
	}
	return fmt.Errorf("no supported policy among [%s]", strings.Join(names, ", "))
}

func typedPolicy(a *anypb.Any) (proto.Message, bool) {
	switch strings.TrimPrefix(a.GetTypeUrl(), "type.googleapis.com/") {
	case "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin":
		return &roundrobinv3.RoundRobin{}, true
	case "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest":
		return &leastrequestv3.LeastRequest{}, true
	case "envoy.extensions.load_balancing_policies.random.v3.Random":
		return &randomv3.Random{}, true
	case "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash":
		return &ringhashv3.RingHash{}, true
	case "envoy.extensions.load_balancing_policies.maglev.v3.Maglev":
		return &maglevv3.Maglev{}, true
	}
	return nil, false
}

func localityConfig(cfg *lb.Config, l *commonv3.LocalityLbConfig) {
	if l != nil {
		cfg.LocalityWeighted = l.GetLocalityWeightedLbConfig() != nil
	}
}

func leastRequest(cfg *lb.Config, choices *wrapperspb.UInt32Value, bias *corev3.RuntimeDouble) {
	if choices != nil {
		cfg.ChoiceCount = choices.GetValue()
	}
	if bias != nil {
		cfg.ActiveRequestBias = bias.GetDefaultValue()
	}
}

func ringSizes(cfg *lb.Config, minSize, maxSize *wrapperspb.UInt64Value) {
	if minSize != nil {
		cfg.MinRingSize = minSize.GetValue()
	}
	if maxSize != nil {
		cfg.MaxRingSize = maxSize.GetValue()
	}
}

func slowStart(s *clusterv3.Cluster_SlowStartConfig) *SlowStart {
	if s == nil {
		return nil
	}
	out := &SlowStart{Window: durationOr(s.GetSlowStartWindow(), 0), Aggression: 1, MinWeightPercent: 10}
	if a := s.GetAggression(); a != nil {
		out.Aggression = a.GetDefaultValue()
	}
	if p := s.GetMinWeightPercent(); p != nil {
		out.MinWeightPercent = p.GetValue()
	}
	return out
}

func typedSlowStart(s *commonv3.SlowStartConfig) *SlowStart {
	if s == nil {
		return nil
	}
	return slowStart(&clusterv3.Cluster_SlowStartConfig{
		SlowStartWindow: s.GetSlowStartWindow(), Aggression: s.GetAggression(), MinWeightPercent: s.GetMinWeightPercent(),
	})
}
