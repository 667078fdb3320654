package manager

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/dataplane/upstream"
)

// Resolver resolves the host names of STRICT_DNS and LOGICAL_DNS
// clusters. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config are the manager's collaborators; all are optional.
type Config struct {
	// Logger receives cluster updates, rejections and ejections (default:
	// discard).
	Logger *slog.Logger
	// Now is the clock of outlier detection (default time.Now).
	Now func() time.Time
	// Rand is the random source of load balancing and outlier detection;
	// safe for concurrent use (default math/rand/v2).
	Rand func() uint64
	// Transports builds transport sockets (default PlaintextOnly).
	Transports Transports
	// Resolver resolves DNS clusters (default net.DefaultResolver).
	Resolver Resolver
}

// Manager is the cluster manager: one upstream.Instance per cluster, with
// its connection pools, updated from CDS and EDS. It implements the HTTP
// router's Upstream (RoundTrip) and the tcp proxy's Upstream (Dial).
//
// Goroutines and state: the cluster table is an immutable map swapped
// atomically, read without locks by RoundTrip and Dial. ApplyClusters and
// ApplyEndpoints are serialized by mu, which also guards the EDS cache and
// the clusters' timer goroutines. Run owns those goroutines (one per
// cluster that has outlier detection, DNS resolution or ORIGINAL_DST
// hosts to clean up) and, when it returns, closes every pool.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	clusters atomic.Pointer[map[string]*entry]
	kick     chan struct{}
	wg       sync.WaitGroup

	mu sync.Mutex
	// endpoints is the last good EndpointSet per EDS service name, and
	// applied the version of the assignment it was compiled from.
	endpoints map[string]*upstream.EndpointSet
	applied   map[string]string
	// intern shares the repeated parts of the compiled endpoints (socket
	// match metadata) across all EDS assignments.
	intern *upstream.Interner
	// byEDS indexes the current EDS clusters by service name.
	byEDS map[string][]*entry
	// retired clusters drain their pools; forgotten once empty.
	retired []*entry
	// toStart are clusters whose timer goroutine Run has yet to start.
	toStart []*entry
	running bool
	closed  bool
}

// New returns a manager without clusters. It starts nothing: Run does.
func New(cfg Config) (*Manager, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Uint64
	}
	if cfg.Transports == nil {
		cfg.Transports = PlaintextOnly
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	m := &Manager{
		cfg:       cfg,
		log:       cfg.Logger,
		kick:      make(chan struct{}, 1),
		endpoints: map[string]*upstream.EndpointSet{},
		applied:   map[string]string{},
		intern:    upstream.NewInterner(),
		byEDS:     map[string][]*entry{},
	}
	m.clusters.Store(&map[string]*entry{})
	return m, nil
}

// lookup returns the current cluster name, or nil.
func (m *Manager) lookup(name string) *entry {
	return (*m.clusters.Load())[name]
}

// Run runs the clusters' timers (outlier detection intervals, DNS
// refresh, ORIGINAL_DST host cleanup) until ctx is done, then closes every
// connection pool; requests fail with NoCluster afterwards. It returns
// nil, or an error if called twice.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.running || m.closed {
		m.mu.Unlock()
		return errors.New("manager: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	for {
		m.startPending(ctx)
		select {
		case <-ctx.Done():
			m.shutdown()
			return nil
		case <-m.kick:
		}
	}
}

// startPending starts the timer goroutines of new clusters.
func (m *Manager) startPending(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.toStart {
		if e.retired.Load() {
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		e.cancel = cancel
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			e.run(cctx, m)
		}()
	}
	m.toStart = nil
}

// startLocked schedules e's timer goroutine, if it needs one.
func (m *Manager) startLocked(e *entry) {
	if !e.needsRun() {
		return
	}
	m.toStart = append(m.toStart, e)
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// retireLocked takes e out of service: its timers stop, its pools drain.
func (m *Manager) retireLocked(e *entry) {
	e.retired.Store(true)
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
	e.drain()
	m.retired = append(m.retired, e)
	m.log.Debug("cluster retired", "cluster", e.name)
}

// shutdown stops every timer goroutine and closes every pool.
func (m *Manager) shutdown() {
	m.mu.Lock()
	m.closed = true
	cur := *m.clusters.Load()
	m.clusters.Store(&map[string]*entry{})
	all := append([]*entry(nil), m.retired...)
	for _, e := range cur {
		all = append(all, e)
	}
	for _, e := range all {
		e.retired.Store(true)
		if e.cancel != nil {
			e.cancel()
			e.cancel = nil
		}
	}
	m.retired, m.toStart = nil, nil
	m.mu.Unlock()
	m.wg.Wait()
	for _, e := range all {
		e.close()
	}
}

// EDSNames returns the EDS service names of the current clusters, for the
// xDS client's EDS subscription.
func (m *Manager) EDSNames() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.byEDS))
	for name := range m.byEDS {
		out = append(out, name)
	}
	return out
}
