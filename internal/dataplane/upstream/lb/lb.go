package lb

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/trellismesh/trellis/internal/dataplane/upstream/host"
)

// Policy is a load-balancing policy (Cluster.LbPolicy).
type Policy uint8

const (
	RoundRobin Policy = iota
	LeastRequest
	Random
	RingHash
	Maglev
)

func (p Policy) String() string {
	switch p {
	case RoundRobin:
		return "ROUND_ROBIN"
	case LeastRequest:
		return "LEAST_REQUEST"
	case Random:
		return "RANDOM"
	case RingHash:
		return "RING_HASH"
	case Maglev:
		return "MAGLEV"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// HashFunction hashes hosts onto a ring.
type HashFunction uint8

const (
	XXHash HashFunction = iota
	MurmurHash2
)

// Envoy's defaults and limits.
const (
	DefaultPanicThreshold    = 50
	DefaultChoiceCount       = 2
	DefaultActiveRequestBias = 1.0
	DefaultMinRingSize       = 1024
	DefaultMaxRingSize       = 8 * 1024 * 1024
	MaxRingSize              = 8 * 1024 * 1024
	DefaultMaglevTableSize   = 65537
	MaxMaglevTableSize       = 5000011
)

// Config configures a Balancer.
type Config struct {
	Policy Policy
	// PanicThreshold in percent: below that share of healthy (plus
	// degraded) hosts a priority balances over all its hosts. 0 disables
	// panic mode. Envoy: 50.
	PanicThreshold uint32
	// LocalityWeighted picks a locality by weight first
	// (locality_weighted_lb_config).
	LocalityWeighted bool
	// ChoiceCount of least request: hosts sampled per pick. Envoy: 2.
	ChoiceCount uint32
	// ActiveRequestBias of weighted least request. Envoy: 1.0.
	ActiveRequestBias float64
	// FullScan makes equal-weight least request compare every host, ties
	// broken at random, instead of sampling ChoiceCount of them
	// (selection_method FULL_SCAN of the typed policy).
	FullScan bool
	// MinRingSize and MaxRingSize bound the ring hash ring. Envoy: 1024, 8M.
	MinRingSize, MaxRingSize uint64
	// HashFunction of the ring. Envoy: XXHash.
	HashFunction HashFunction
	// MaglevTableSize, a prime. Envoy: 65537.
	MaglevTableSize uint64
	// UseHostnameForHashing keys hosts on rings and tables by hostname.
	UseHostnameForHashing bool
}

// DefaultConfig returns Envoy's defaults for policy.
func DefaultConfig(policy Policy) Config {
	return Config{
		Policy:            policy,
		PanicThreshold:    DefaultPanicThreshold,
		ChoiceCount:       DefaultChoiceCount,
		ActiveRequestBias: DefaultActiveRequestBias,
		MinRingSize:       DefaultMinRingSize,
		MaxRingSize:       DefaultMaxRingSize,
		MaglevTableSize:   DefaultMaglevTableSize,
	}
}

// Validate checks the configuration, with Envoy's messages where it has
// one.
func (c *Config) Validate() error {
	switch {
	case c.Policy > Maglev:
		return fmt.Errorf("unknown policy %d", c.Policy)
	case c.PanicThreshold > 100:
		return fmt.Errorf("healthy_panic_threshold: %d%% is over 100%%", c.PanicThreshold)
	}
	switch c.Policy {
	case LeastRequest:
		switch {
		case c.ChoiceCount < 2:
			return fmt.Errorf("least_request_lb_config.choice_count: %d is less than 2", c.ChoiceCount)
		case c.ActiveRequestBias < 0 || c.ActiveRequestBias != c.ActiveRequestBias:
			return fmt.Errorf("least_request_lb_config.active_request_bias: %v is not a number >= 0", c.ActiveRequestBias)
		}
	case RingHash:
		switch {
		case c.MinRingSize == 0 || c.MinRingSize > MaxRingSize:
			return fmt.Errorf("ring_hash_lb_config.minimum_ring_size: %d is not in [1, %d]", c.MinRingSize, MaxRingSize)
		case c.MaxRingSize == 0 || c.MaxRingSize > MaxRingSize:
			return fmt.Errorf("ring_hash_lb_config.maximum_ring_size: %d is not in [1, %d]", c.MaxRingSize, MaxRingSize)
		case c.MinRingSize > c.MaxRingSize:
			return fmt.Errorf("ring hash: minimum_ring_size (%d) > maximum_ring_size (%d)", c.MinRingSize, c.MaxRingSize)
		}
	case Maglev:
		switch {
		case c.MaglevTableSize > MaxMaglevTableSize:
			return fmt.Errorf("maglev_lb_config.table_size: %d is over %d", c.MaglevTableSize, MaxMaglevTableSize)
		case !isPrime(c.MaglevTableSize):
			return errors.New("The table size of maglev must be prime number")
		}
	}
	return nil
}

// Options are a Balancer's collaborators.
type Options struct {
	// Rand returns uniformly random values; it must be safe for concurrent
	// use (default: math/rand/v2).
	Rand func() uint64
}

// PickContext is what the router knows about the request when it picks a
// host. The zero value picks a host for a first attempt without a hash.
type PickContext struct {
	// Hash is the request hash computed from the route's hash policies;
	// HasHash says it is set. Ring hash and Maglev use it (random without);
	// other policies ignore it.
	Hash    uint64
	HasHash bool
	// Attempt is the router's attempt number, 0 for the first try. The
	// balancers, like Envoy's, do not depend on it: retries reach other
	// hosts through Previous.
	Attempt uint32
	// Previous are the hosts already tried, when the route's retry policy
	// has the previous_hosts host predicate.
	Previous []*host.Host
	// SelectionRetries is how many times to pick again while the pick is in
	// Previous (host_selection_retry_max_attempts; Envoy's default is 1).
	// The last pick is returned even if it was tried before.
	SelectionRetries uint32
}

// accept is the previous_hosts predicate: false when h was tried before.
func (c *PickContext) accept(h *host.Host) bool {
	for _, p := range c.Previous {
		if p == h {
			return false
		}
	}
	return true
}

func (c *PickContext) tries() uint32 {
	if len(c.Previous) == 0 {
		return 1
	}
	return 1 + c.SelectionRetries
}

// ErrNoHealthyUpstream is returned when there is no host to pick: the
// cluster is empty, or no host is usable and panic mode is off. Envoy
// answers 503 "no healthy upstream" with response flag UH.
var ErrNoHealthyUpstream = errors.New("no healthy upstream")

// Balancer picks hosts from one host set. It is safe for concurrent use.
type Balancer struct {
	policy Policy
	loads  loads
	// One of these, by policy. Concrete types, not an interface, so that
	// the context does not escape and Pick does not allocate.
	zone *zoneAware
	hash *hashing
}

// New builds a balancer over set.
func New(cfg Config, set *host.Set, opts Options) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Uint64
	}
	b := &Balancer{policy: cfg.Policy, loads: computeLoads(set, cfg.PanicThreshold)}
	switch cfg.Policy {
	case RingHash, Maglev:
		b.hash = newHashing(cfg, set, &b.loads, rnd)
	default:
		b.zone = newZoneAware(cfg, set, &b.loads, rnd)
	}
	return b, nil
}

// Pick returns a host for one attempt of a request.
func (b *Balancer) Pick(ctx PickContext) (*host.Host, error) {
	var h *host.Host
	if b.hash != nil {
		h = b.hash.pick(&ctx)
	} else {
		h = b.zone.pick(&ctx)
	}
	if h == nil {
		return nil, ErrNoHealthyUpstream
	}
	return h, nil
}

// Policy returns the balancer's policy.
func (b *Balancer) Policy() Policy { return b.policy }

// PriorityLoad is the share of traffic of each priority, for the admin
// interface (Envoy's per-priority load and panic state).
type PriorityLoad struct {
	// Healthy and Degraded are percentages of requests sent to the
	// healthy and degraded hosts of each priority; they sum to 100.
	Healthy  []uint32
	Degraded []uint32
	// Panic is true for the priorities balancing over all their hosts.
	Panic []bool
}

// Load returns the per-priority load of the balancer.
func (b *Balancer) Load() PriorityLoad {
	return PriorityLoad{
		Healthy:  append([]uint32(nil), b.loads.healthy...),
		Degraded: append([]uint32(nil), b.loads.degraded...),
		Panic:    append([]bool(nil), b.loads.panic...),
	}
}

func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
