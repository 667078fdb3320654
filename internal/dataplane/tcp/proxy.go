package tcp

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/trellismesh/trellis/internal/dataplane/listener"
)

// TypeURL is the typed_config type of the tcp_proxy network filter.
const TypeURL = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

// Envoy's defaults.
const (
	DefaultIdleTimeout        = time.Hour
	DefaultMaxConnectAttempts = 1
)

// Settings is a compiled TcpProxy. It is immutable.
type Settings struct {
	StatPrefix string
	// Cluster is set unless Weighted is.
	Cluster  string
	Weighted []WeightedCluster
	// IdleTimeout closes the connection when no byte moved either way for
	// this long; 0 disables it.
	IdleTimeout time.Duration
	// MaxConnectAttempts is the number of upstream connection attempts.
	MaxConnectAttempts int
	// BackoffBase and BackoffMax space connection attempts (full jitter);
	// zero BackoffBase retries at once.
	BackoffBase, BackoffMax time.Duration
	// MaxDuration closes the connection this long after it was taken,
	// plus a random jitter of up to MaxDurationJitter percent; 0 for no
	// limit.
	MaxDuration       time.Duration
	MaxDurationJitter float64
	// HashSourceIP: hash_policy source_ip; the hash goes to the Upstream
	// through the context (HashKey).
	HashSourceIP bool

	totalWeight uint64
}

// WeightedCluster is one cluster of a weighted split.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// Compile validates a TcpProxy and applies Envoy's defaults. Fields that
// would change where or how traffic flows and are not implemented are
// rejected: on_demand, tunneling_config, metadata_match,
// upstream_connect_mode other than IMMEDIATE, hash policies other than
// source_ip. Access logs are compiled by Builder.Build (Config.AccessLogs),
// not here.
func Compile(tp *tcpv3.TcpProxy) (*Settings, error) {
	if tp == nil {
		return nil, errors.New("tcp_proxy: config is nil")
	}
	s := &Settings{
		StatPrefix:         tp.GetStatPrefix(),
		IdleTimeout:        DefaultIdleTimeout,
		MaxConnectAttempts: DefaultMaxConnectAttempts,
	}
	if s.StatPrefix == "" {
		return nil, errors.New("tcp_proxy: stat_prefix is required")
	}
	switch {
	case tp.GetOnDemand() != nil:
		return nil, errors.New("tcp_proxy: on_demand is not supported")
	case tp.GetTunnelingConfig() != nil:
		return nil, errors.New("tcp_proxy: tunneling_config is not supported")
	case tp.GetMetadataMatch() != nil:
		return nil, errors.New("tcp_proxy: metadata_match (subset load balancing) is not supported")
	case tp.GetUpstreamConnectMode() != tcpv3.UpstreamConnectMode_IMMEDIATE:
		return nil, fmt.Errorf("tcp_proxy: upstream_connect_mode %s is not supported", tp.GetUpstreamConnectMode())
	}
	switch cs := tp.GetClusterSpecifier().(type) {
	case *tcpv3.TcpProxy_Cluster:
		if cs.Cluster == "" {
			return nil, errors.New("tcp_proxy: cluster is empty")
		}
		s.Cluster = cs.Cluster
	case *tcpv3.TcpProxy_WeightedClusters:
		if err := s.compileWeighted(cs.WeightedClusters); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("tcp_proxy: one of cluster or weighted_clusters is required")
	}
	if d := tp.GetIdleTimeout(); d != nil {
		v, err := duration("idle_timeout", d.CheckValid(), d.AsDuration())
		if err != nil {
			return nil, err
		}
		s.IdleTimeout = v
	}
	if a := tp.GetMaxConnectAttempts(); a != nil {
		if a.GetValue() < 1 {
			return nil, errors.New("tcp_proxy: max_connect_attempts must be at least 1")
		}
		s.MaxConnectAttempts = int(min(a.GetValue(), 1000))
	}
	if b := tp.GetBackoffOptions(); b != nil {
		base, err := duration("backoff_options.base_interval", b.GetBaseInterval().CheckValid(), b.GetBaseInterval().AsDuration())
		if err != nil || base < time.Millisecond {
			return nil, errors.New("tcp_proxy: backoff_options.base_interval must be at least 1ms")
		}
		s.BackoffBase, s.BackoffMax = base, 10*base
		if m := b.GetMaxInterval(); m != nil {
			if s.BackoffMax, err = duration("backoff_options.max_interval", m.CheckValid(), m.AsDuration()); err != nil {
				return nil, err
			}
			if s.BackoffMax < base {
				return nil, errors.New("tcp_proxy: backoff_options.max_interval must be at least base_interval")
			}
		}
	}
	if d := tp.GetMaxDownstreamConnectionDuration(); d != nil {
		v, err := duration("max_downstream_connection_duration", d.CheckValid(), d.AsDuration())
		if err != nil {
			return nil, err
		}
		if v > 0 && v < time.Millisecond {
			return nil, errors.New("tcp_proxy: max_downstream_connection_duration must be at least 1ms")
		}
		s.MaxDuration = v
		if p := tp.GetMaxDownstreamConnectionDurationJitterPercentage(); p != nil {
			if p.GetValue() < 0 || p.GetValue() > 100 {
				return nil, errors.New("tcp_proxy: max_downstream_connection_duration_jitter_percentage must be in [0, 100]")
			}
			s.MaxDurationJitter = p.GetValue()
		}
	}
	for i, hp := range tp.GetHashPolicy() {
		if _, ok := hp.GetPolicySpecifier().(*typev3.HashPolicy_SourceIp_); !ok {
			return nil, fmt.Errorf("tcp_proxy: hash_policy[%d]: only source_ip is supported", i)
		}
		s.HashSourceIP = true
	}
	return s, nil
}

func (s *Settings) compileWeighted(wc *tcpv3.TcpProxy_WeightedCluster) error {
	if len(wc.GetClusters()) == 0 {
		return errors.New("tcp_proxy: weighted_clusters has no clusters")
	}
	for i, c := range wc.GetClusters() {
		switch {
		case c.GetName() == "":
			return fmt.Errorf("tcp_proxy: weighted_clusters.clusters[%d]: name is empty", i)
		case c.GetWeight() < 1:
			return fmt.Errorf("tcp_proxy: weighted_clusters.clusters[%d] (%q): weight must be at least 1", i, c.GetName())
		case c.GetMetadataMatch() != nil:
			return fmt.Errorf("tcp_proxy: weighted_clusters.clusters[%d] (%q): metadata_match is not supported", i, c.GetName())
		}
		s.Weighted = append(s.Weighted, WeightedCluster{Name: c.GetName(), Weight: c.GetWeight()})
		s.totalWeight += uint64(c.GetWeight())
	}
	return nil
}

func duration(field string, valid error, d time.Duration) (time.Duration, error) {
	if valid != nil || d < 0 {
		return 0, fmt.Errorf("tcp_proxy: %s: invalid duration", field)
	}
	return d, nil
}

// pick chooses the cluster: the only one, or a weighted random one (r is
// uniform in [0, total weight)), as Envoy's WeightedClusterEntry.
func (s *Settings) pick(r func(n uint64) uint64) string {
	if len(s.Weighted) == 0 {
		return s.Cluster
	}
	v := r(s.totalWeight)
	for _, c := range s.Weighted {
		if v < uint64(c.Weight) {
			return c.Name
		}
		v -= uint64(c.Weight)
	}
	return s.Weighted[len(s.Weighted)-1].Name
}

// Config is what the proxies a Builder makes share.
type Config struct {
	// Upstream connects to clusters. Required.
	Upstream Upstream
	// Observer receives each session; optional.
	Observer Observer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Rand returns a uniform number in [0, n) (n > 0), for weighted
	// clusters and back-off jitter. Default math/rand/v2.
	Rand func(n uint64) uint64
	// AccessLogs compiles the tcp_proxy's access_log entries; nil ignores
	// them.
	AccessLogs AccessLogs
}

// AccessLogs compiles a tcp_proxy's access_log entries into the function
// called with each session once it is closed (nil: nothing to log). An
// error names the entry and rejects the filter (NACK).
type AccessLogs interface {
	CompileTCP(logs []*accesslogv3.AccessLog) (func(*Session), error)
}

// Builder builds tcp_proxy handlers: it is the listener.NetworkFilters
// for TypeURL (register it in a listener.Registry).
type Builder struct {
	cfg Config
}

// NewBuilder checks cfg and returns a Builder.
func NewBuilder(cfg Config) (*Builder, error) {
	if cfg.Upstream == nil {
		return nil, errors.New("tcp: Upstream is required")
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Uint64N
	}
	return &Builder{cfg: cfg}, nil
}

// Build compiles a tcp_proxy network filter.
func (b *Builder) Build(f *listenerv3.Filter) (listener.ConnHandler, error) {
	tc := f.GetTypedConfig()
	if tc == nil || tc.GetTypeUrl() != TypeURL {
		return nil, fmt.Errorf("tcp_proxy: typed_config must be %s", TypeURL)
	}
	tp := &tcpv3.TcpProxy{}
	if err := anypb.UnmarshalTo(tc, tp, proto.UnmarshalOptions{}); err != nil {
		return nil, fmt.Errorf("tcp_proxy: %w", err)
	}
	s, err := Compile(tp)
	if err != nil {
		return nil, err
	}
	p := b.Proxy(s)
	if b.cfg.AccessLogs != nil {
		if p.log, err = b.cfg.AccessLogs.CompileTCP(tp.GetAccessLog()); err != nil {
			return nil, fmt.Errorf("tcp_proxy: %w", err)
		}
	}
	return p, nil
}

// Proxy returns the handler of compiled settings.
func (b *Builder) Proxy(s *Settings) *Proxy {
	return &Proxy{s: s, cfg: b.cfg}
}

// Proxy is a tcp_proxy: a listener.ConnHandler that connects each
// connection to its cluster and relays bytes both ways.
type Proxy struct {
	s   *Settings
	cfg Config
	log func(*Session) // access logs, nil for none
}

// Settings returns the proxy's compiled configuration.
func (p *Proxy) Settings() *Settings { return p.s }
