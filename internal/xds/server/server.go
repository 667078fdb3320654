package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/xds"
)

// Generator builds the complete current set of resources of one type for
// one proxy. For EDS and RDS names are the names the proxy subscribed to
// (generators return only those); for CDS and LDS names is nil (wildcard).
//
// Generate is called concurrently for different proxies. The returned slice
// and the Resources in it may be shared between proxies and calls (the
// server never mutates them); names is owned by the server and must not be
// retained or mutated.
type Generator interface {
	Generate(snap *model.Snapshot, proxy *model.Proxy, typeURL string, names []string) ([]xds.Resource, error)
}

// PushRequest describes a change that led to a new snapshot.
//
// When both ConfigsUpdated and ServicesUpdated are nil, everything may have
// changed. When either is non-nil, the two sets together list every change
// (a nil set then means "nothing of that kind").
type PushRequest struct {
	// Full is false when only endpoints changed (EDS fast path).
	Full            bool
	ConfigsUpdated  map[config.Key]struct{}
	ServicesUpdated map[model.ServiceKey]struct{}
	Reason          string
	// Start is the time of the earliest change merged into this push
	// (zero: the time of the Update call).
	Start time.Time
}

// Config configures a Server.
type Config struct {
	// Generator builds resources. Required.
	Generator Generator
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Debounce is the quiet time after the last Update before a push
	// (default 100ms).
	Debounce time.Duration
	// DebounceMax bounds the delay since the first merged Update (default 10s).
	DebounceMax time.Duration
	// MetricsRegistry receives the server's metrics (nil: a private registry).
	MetricsRegistry *prometheus.Registry
	// PushConcurrency bounds the number of proxies whose resources are being
	// generated at once (default 2×GOMAXPROCS).
	PushConcurrency int
	// Authorizer, when set, is called once per stream with the parsed proxy;
	// an error rejects the stream with PermissionDenied.
	Authorizer func(ctx context.Context, proxy *model.Proxy) error
	// NodeTimeout closes streams whose first request does not arrive in
	// time (default 15s).
	NodeTimeout time.Duration
	// SendTimeout closes a stream whose Send blocks longer (0: no limit; the
	// stream is still closed when the server stops).
	SendTimeout time.Duration
	// MaxResourceNames caps the names one stream may subscribe to per type
	// (default 50,000). A request above it closes the stream with
	// ResourceExhausted.
	MaxResourceNames int
}

// Defaults applied by New.
const (
	DefaultDebounce         = 100 * time.Millisecond
	DefaultDebounceMax      = 10 * time.Second
	DefaultNodeTimeout      = 15 * time.Second
	DefaultMaxResourceNames = 50_000
)

// Server is the ADS transport. Create it with New, attach it to a gRPC
// server with Register, start it with Run.
type Server struct {
	gen        Generator
	log        *slog.Logger
	authorize  func(context.Context, *model.Proxy) error
	nodeWait   time.Duration
	sendWait   time.Duration
	maxNames   int
	metrics    *metrics
	debouncer  *debouncer
	sem        chan struct{} // generation slots
	digests    digests
	stop       chan struct{} // closed when Run's context is done
	stopOnce   sync.Once
	connWG     sync.WaitGroup // stream loops of registered connections
	connSerial uint64         // guarded by mu

	mu    sync.Mutex
	snap  *model.Snapshot // last dispatched snapshot; guarded by mu
	conns map[*connection]struct{}
	// stopped is set (under mu) once Run has begun shutting down.
	stopped bool
	running bool
}

// New checks cfg and builds a Server. It performs no I/O.
func New(cfg Config) (*Server, error) {
	if cfg.Generator == nil {
		return nil, errors.New("xds server: config: Generator is required")
	}
	if cfg.Debounce < 0 || cfg.DebounceMax < 0 || cfg.PushConcurrency < 0 || cfg.NodeTimeout < 0 ||
		cfg.SendTimeout < 0 || cfg.MaxResourceNames < 0 {
		return nil, errors.New("xds server: config: durations and limits must not be negative")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.DebounceMax == 0 {
		cfg.DebounceMax = DefaultDebounceMax
	}
	if cfg.DebounceMax < cfg.Debounce {
		return nil, fmt.Errorf("xds server: config: DebounceMax %v is shorter than Debounce %v", cfg.DebounceMax, cfg.Debounce)
	}
	if cfg.PushConcurrency == 0 {
		cfg.PushConcurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = DefaultNodeTimeout
	}
	if cfg.MaxResourceNames == 0 {
		cfg.MaxResourceNames = DefaultMaxResourceNames
	}
	reg := cfg.MetricsRegistry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("xds server: %w", err)
	}
	return &Server{
		gen:       cfg.Generator,
		log:       cfg.Logger,
		authorize: cfg.Authorizer,
		nodeWait:  cfg.NodeTimeout,
		sendWait:  cfg.SendTimeout,
		maxNames:  cfg.MaxResourceNames,
		metrics:   m,
		debouncer: newDebouncer(cfg.Debounce, cfg.DebounceMax),
		sem:       make(chan struct{}, cfg.PushConcurrency),
		stop:      make(chan struct{}),
		conns:     map[*connection]struct{}{},
	}, nil
}

// Register registers the aggregated discovery service (state of the world
// and delta) on g.
func (s *Server) Register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, ads{s: s})
}

// StreamAuth authenticates the caller of one stream and binds the proxy to
// what it proved. It is called once per stream, with the proxy parsed from
// the first request's node, before Config.Authorizer; it may set fields of
// proxy (the identity the caller proved replaces what the node claimed),
// and the stream then serves that proxy. An error carrying a gRPC status
// (Unauthenticated, PermissionDenied) ends the stream with it; any other
// error ends it with PermissionDenied.
type StreamAuth func(ctx context.Context, proxy *model.Proxy) error

// RegisterAuthenticated registers the aggregated discovery service on g
// with auth in front of every stream (the secure port: the caller's
// identity comes from its certificate). Streams of every registration
// share the server's state and pushes.
func (s *Server) RegisterAuthenticated(g *grpc.Server, auth StreamAuth) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, ads{s: s, auth: auth})
}

// Update hands the server a new snapshot. Calls are merged and pushed after
// the debounce delay; only the latest snapshot is pushed. Update never
// blocks on proxies.
func (s *Server) Update(snap *model.Snapshot, req PushRequest) {
	if snap == nil {
		return
	}
	s.debouncer.add(snap, req, time.Now())
}

// Run runs the debounce and push loop. It blocks until ctx is done, then
// closes every stream (Unavailable) and returns once their loops have ended.
// Run may be called once.
func (s *Server) Run(ctx context.Context) {
	s.mu.Lock()
	if s.running || s.stopped {
		s.mu.Unlock()
		s.log.Error("xds server: Run called twice")
		return
	}
	s.running = true
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.debouncer.run(ctx, s.dispatch)
	}()
	<-ctx.Done()
	<-done

	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stop) })
	s.connWG.Wait()
}

// current returns the last dispatched snapshot (nil before the first push).
func (s *Server) current() *model.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// register adds a connection. It fails once the server is stopping.
func (s *Server) register(c *connection) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.connSerial++
	c.id = fmt.Sprintf("%s-%d", c.proxy.ID, s.connSerial)
	c.snap = s.snap
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.metrics.connected.Inc()
	return true
}

func (s *Server) unregister(c *connection) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.metrics.connected.Dec()
	s.connWG.Done()
}

// ads adapts Server to the generated gRPC service interface, so that the
// RPC methods stay off Server's own API.
type ads struct {
	discovery.UnimplementedAggregatedDiscoveryServiceServer
	s    *Server
	auth StreamAuth // nil: no authentication (plaintext port)
}

func (a ads) StreamAggregatedResources(stream grpc.BidiStreamingServer[discovery.DiscoveryRequest, discovery.DiscoveryResponse]) error {
	return a.s.streamSotw(stream, a.auth)
}

func (a ads) DeltaAggregatedResources(stream grpc.BidiStreamingServer[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]) error {
	return a.s.streamDelta(stream, a.auth)
}
