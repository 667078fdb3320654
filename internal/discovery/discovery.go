package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/config/store/file"
	"github.com/trellismesh/trellis/internal/jwks"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/cacert"
	"github.com/trellismesh/trellis/internal/kube/configsource"
	"github.com/trellismesh/trellis/internal/kube/leader"
	"github.com/trellismesh/trellis/internal/kube/webhook"
	"github.com/trellismesh/trellis/internal/localonly"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry"
	"github.com/trellismesh/trellis/internal/registry/aggregate"
	registrykube "github.com/trellismesh/trellis/internal/registry/kube"
	"github.com/trellismesh/trellis/internal/registry/serviceentry"
	"github.com/trellismesh/trellis/internal/xds/gen"
	"github.com/trellismesh/trellis/internal/xds/server"
)

// Config configures the control plane. cmd/trellis fills it from flags.
type Config struct {
	// ConfigDir is a directory of Istio YAML, watched. Optional when Stores
	// are given.
	ConfigDir string
	// Stores are additional configuration sources (the in-memory store in
	// tests). Earlier sources win over later ones; the directory comes
	// first, the cluster's CRDs last.
	Stores []store.Store
	// Kube is the cluster to serve (nil: none). Its Services, EndpointSlices
	// and Pods become services and endpoints (registry/kube, ahead of the
	// ServiceEntry registry), and its Istio and Gateway API objects a
	// configuration source (kube/configsource).
	Kube *kube.Client
	// SystemNamespace is the control plane's namespace on the cluster
	// (default istio-system); its topology.istio.io/network label names
	// the cluster's network.
	SystemNamespace string
	// XDSAddress is the plaintext xDS listen address (default ":15010";
	// "-" disables it: proxies then connect to the secure port with their
	// mesh certificate).
	XDSAddress string
	// MonitoringAddress serves /metrics and /ready (default ":15014"; "-"
	// disables it).
	MonitoringAddress string
	// Debounce is the push debounce (default 100ms). FileDebounce is the
	// directory watch debounce (default 100ms).
	Debounce     time.Duration
	FileDebounce time.Duration
	// Mesh is the mesh configuration (nil: defaults).
	Mesh *meshconfig.MeshConfig
	// DomainSuffix completes short host names (default cluster.local).
	DomainSuffix string
	// SecureGRPCAddress serves Istio's CA service and xDS over mutual TLS
	// (the command passes ":15012"); "" disables both.
	SecureGRPCAddress string
	// CADir holds the CA files, created with a self-signed root on first
	// start (see package ca); bootstrap tokens live in CADir/bootstrap.
	CADir string
	// TrustDomain overrides the mesh config's trustDomain for the CA.
	TrustDomain string
	// Webhook serves the injection and validation webhooks (kubeplane.go);
	// nil: none. It needs Kube and the CA.
	Webhook *WebhookConfig
	// Leader configures leader election on a cluster (kubeplane.go).
	Leader LeaderConfig
	// JWKSRefresh is how often RequestAuthentication jwksUri key sets are
	// fetched again (Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL; 0: 20m).
	JWKSRefresh time.Duration
	// SendUnhealthyEndpoints publishes not-ready Kubernetes endpoints as
	// UNHEALTHY in EDS instead of leaving them out (Istio's
	// PILOT_SEND_UNHEALTHY_ENDPOINTS; registry/kube).
	SendUnhealthyEndpoints bool
	Logger                 *slog.Logger
}

// maxXDSRequestBytes bounds one xDS request message on both ports.
const maxXDSRequestBytes = 4 << 20

// Server is a running control plane.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	registry registry.Registry
	inf      *kube.Informers // nil without a cluster
	xds      *server.Server
	metrics  *prometheus.Registry
	changes  *changes
	version  atomic.Uint64
	snap     atomic.Pointer[model.Snapshot]
	caFollow *caFollower // set by secureGRPC; follows CA rotations (rotation.go)
	// On a cluster, set by secureGRPC: the CA, and the follower of its
	// Secrets (kube/cacert).
	authority *ca.Authority
	caSecrets *cacert.Follower
	elector   atomic.Pointer[leader.Elector] // set by Run on a cluster
	// jwks fetches RequestAuthentication jwksUri key sets for snapshots
	// (Istio's default: the control plane resolves them and inlines them).
	jwks *jwks.Resolver

	mu          sync.Mutex
	xdsAddr     net.Addr
	monAddr     net.Addr
	secAddr     net.Addr
	webhookAddr net.Addr
	ready       chan struct{}
	readyOnce   sync.Once
}

// New builds the control plane. It does no I/O; Run listens and serves.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.XDSAddress == "" {
		cfg.XDSAddress = ":15010"
	}
	if cfg.MonitoringAddress == "" {
		cfg.MonitoringAddress = ":15014"
	}
	if cfg.XDSAddress == "-" && cfg.SecureGRPCAddress == "" {
		return nil, errors.New("no xDS port: the plaintext one is disabled and there is no secure one")
	}
	if cfg.Mesh == nil {
		cfg.Mesh = model.DefaultMesh()
	}
	if cfg.DomainSuffix == "" {
		cfg.DomainSuffix = model.DefaultDomainSuffix
	}
	stores := append([]store.Store(nil), cfg.Stores...)
	if cfg.ConfigDir != "" {
		fs, err := file.New(file.Config{
			Dir:      cfg.ConfigDir,
			Schemas:  schema.Istio(),
			Decode:   ingest.Decoder(schema.Istio()),
			Validate: ingest.Validate,
			Debounce: cfg.FileDebounce,
			Logger:   cfg.Logger.With("source", "file"),
		})
		if err != nil {
			return nil, fmt.Errorf("config directory: %w", err)
		}
		stores = append([]store.Store{fs}, stores...)
	}
	var inf *kube.Informers
	if cfg.Kube != nil {
		if cfg.SystemNamespace == "" {
			cfg.SystemNamespace = "istio-system"
		}
		inf = kube.NewInformers(cfg.Kube, 0)
		src, err := configsource.New(configsource.Config{
			Informers: inf,
			Validate:  ingest.Validate,
			Logger:    cfg.Logger.With("source", "kubernetes"),
		})
		if err != nil {
			return nil, err
		}
		stores = append(stores, src)
	}
	if err := checkKubeConfig(&cfg); err != nil {
		return nil, err
	}
	if len(stores) == 0 {
		return nil, errors.New("no configuration source: set a config directory or a cluster")
	}
	agg, err := store.NewAggregate(stores...)
	if err != nil {
		return nil, err
	}
	// ServiceEntries and WorkloadEntries come from the merged store: files
	// and the cluster's CRDs alike.
	var reg registry.Registry
	reg, err = serviceentry.New(serviceentry.Config{Store: agg, Logger: cfg.Logger.With("registry", "serviceentry")})
	if err != nil {
		return nil, fmt.Errorf("service entry registry: %w", err)
	}
	if inf != nil {
		kreg, err := registrykube.New(registrykube.Config{
			Informers:       inf,
			DomainSuffix:    cfg.DomainSuffix,
			SystemNamespace: cfg.SystemNamespace,
			Logger:          cfg.Logger.With("registry", "kubernetes"),

			SendUnhealthyEndpoints: cfg.SendUnhealthyEndpoints,
		})
		if err != nil {
			return nil, err
		}
		// Kubernetes services win over ServiceEntries of the same host and
		// namespace, as in Istio.
		if reg, err = aggregate.New(kreg, reg); err != nil {
			return nil, err
		}
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	xs, err := server.New(server.Config{
		Generator:       gen.New(),
		Logger:          cfg.Logger.With("component", "xds"),
		Debounce:        cfg.Debounce,
		MetricsRegistry: metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("xds server: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    agg,
		registry: reg,
		inf:      inf,
		xds:      xs,
		metrics:  metrics,
		changes:  newChanges(),
		ready:    make(chan struct{}),
	}
	s.jwks, err = jwks.New(jwks.Config{
		Refresh: cfg.JWKSRefresh,
		Logger:  cfg.Logger.With("component", "jwks"),
		// A refreshed, new or dropped key set changes every proxy whose
		// RequestAuthentication uses one (jwks.go).
		OnChange: s.jwksChanged,
	})
	if err != nil {
		return nil, err
	}
	s.watch()
	return s, nil
}

// registryKinds are handled through the registry's change events.
func registryKind(k config.GroupKind) bool {
	return k == schema.ServiceEntry || k == schema.WorkloadEntry || k == schema.WorkloadGroup
}

// modelKind reports whether snapshots carry objects of kind k: Istio's
// kinds. The cluster's Gateway API objects are stored (and their problems
// reported) but not yet translated, so they neither enter snapshots nor
// cause pushes.
func modelKind(k config.GroupKind) bool {
	_, ok := schema.Istio().Get(k)
	return ok
}

// watch registers the handlers that feed the snapshot loop.
func (s *Server) watch() {
	for _, sc := range s.store.Schemas().All() {
		if registryKind(sc.GroupKind) || !modelKind(sc.GroupKind) {
			continue
		}
		s.store.RegisterEventHandler(sc.GroupKind, func(ev config.Event) {
			k := ev.Key()
			s.changes.add(true, &k, nil, "config "+ev.Type.String(), time.Now())
		})
	}
	s.registry.RegisterHandler(func(c registry.Change) {
		s.changes.add(!c.EndpointsOnly, nil, c.Services, "registry", time.Now())
	})
}

// Run listens, serves and blocks until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var xl, ml, sl net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{xl, ml, sl} {
			if l != nil {
				l.Close()
			}
		}
	}
	var err error
	if s.cfg.XDSAddress != "-" {
		if xl, err = net.Listen("tcp", s.cfg.XDSAddress); err != nil {
			return fmt.Errorf("xds listener on %s: %w", s.cfg.XDSAddress, err)
		}
	}
	if s.cfg.MonitoringAddress != "-" {
		if ml, err = net.Listen("tcp", s.cfg.MonitoringAddress); err != nil {
			closeAll()
			return fmt.Errorf("monitoring listener on %s: %w", s.cfg.MonitoringAddress, err)
		}
	}
	var sgs *grpc.Server
	if s.cfg.SecureGRPCAddress != "" {
		if sgs, err = s.secureGRPC(ctx); err == nil {
			sl, err = net.Listen("tcp", s.cfg.SecureGRPCAddress)
			if err != nil {
				err = fmt.Errorf("secure gRPC listener on %s: %w", s.cfg.SecureGRPCAddress, err)
			}
		}
		if err != nil {
			closeAll()
			return err
		}
	}
	var whs *webhook.Server
	if s.cfg.Webhook != nil {
		if whs, _, err = s.webhookServer(s.authority); err != nil {
			closeAll()
			return err
		}
	}
	s.mu.Lock()
	if xl != nil {
		s.xdsAddr = xl.Addr()
	}
	if ml != nil {
		s.monAddr = ml.Addr()
	}
	if sl != nil {
		s.secAddr = sl.Addr()
	}
	s.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { s.store.Run(ctx) })
	wg.Go(func() { s.registry.Run(ctx) })
	wg.Go(func() { s.xds.Run(ctx) })
	wg.Go(func() { s.snapshotLoop(ctx) })
	wg.Go(func() { s.caFollow.Run(ctx) })
	wg.Go(func() { s.jwks.Run(ctx) })
	errc := make(chan error, 5)
	if s.caSecrets != nil {
		wg.Go(func() { s.caSecrets.Run(ctx) })
	}
	if s.cfg.Kube != nil {
		// Replicas elect a leader whether or not they run the CA: the
		// status writer needs no roots (runLeader starts the root
		// ConfigMap and caBundle writers only with the CA).
		wg.Go(func() {
			if err := s.runLeader(ctx, s.authority); err != nil {
				errc <- err
			}
		})
	}
	if whs != nil {
		wg.Go(func() {
			if err := whs.Run(ctx); err != nil {
				errc <- err
			}
		})
		wg.Go(func() {
			if a, err := whs.Addr(ctx); err == nil {
				s.mu.Lock()
				s.webhookAddr = a
				s.mu.Unlock()
			}
		})
	}
	var gs *grpc.Server
	if xl != nil {
		gs = grpc.NewServer(xdsLimits().ServerOptions()...)
		s.xds.Register(gs)
		wg.Go(func() {
			if err := gs.Serve(xl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("xds server: %w", err)
			}
		})
	}
	if sl != nil {
		wg.Go(func() {
			if err := sgs.Serve(sl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("secure gRPC server: %w", err)
			}
		})
	}
	var hs *http.Server
	if ml != nil {
		hs = &http.Server{Handler: s.monitoringHandler(), ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := hs.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("monitoring server: %w", err)
			}
		})
	}
	addrOf := func(l net.Listener) string {
		if l == nil {
			return "disabled"
		}
		return l.Addr().String()
	}
	s.log.Info("control plane serving", "xds", addrOf(xl), "secureGRPC", addrOf(sl), "monitoring", addrOf(ml), "configDir", s.cfg.ConfigDir, "kubernetes", s.cfg.Kube != nil)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	if gs != nil {
		gs.Stop()
	}
	if sgs != nil {
		sgs.Stop()
	}
	if hs != nil {
		hs.Close()
	}
	wg.Wait()
	if s.inf != nil {
		// The store and the registry started the informers with ctx.
		s.inf.Shutdown()
	}
	return runErr
}

// snapshotLoop builds a snapshot whenever changes are pending, once the
// sources have synced.
func (s *Server) snapshotLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !s.store.HasSynced() || !s.registry.HasSynced() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	t.Stop()
	// The initial snapshot covers every change recorded while syncing.
	start := time.Now()
	if b, ok := s.changes.take(); ok {
		start = b.start
	}
	s.publish(ctx, batch{full: true, start: start, reasons: []string{"initial"}})
	s.readyOnce.Do(func() { close(s.ready) })
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.changes.wake:
		}
		if b, ok := s.changes.take(); ok {
			s.publish(ctx, b)
		}
	}
}

func (s *Server) publish(ctx context.Context, b batch) {
	snap := s.buildSnapshot(ctx)
	s.snap.Store(snap)
	req := server.PushRequest{
		Full:            b.full,
		ConfigsUpdated:  b.configs,
		ServicesUpdated: b.services,
		Start:           b.start,
	}
	if len(b.reasons) > 0 {
		req.Reason = b.reasons[0]
	}
	s.xds.Update(snap, req)
}

// buildSnapshot reads the current state of the store and registry.
func (s *Server) buildSnapshot(ctx context.Context) *model.Snapshot {
	var configs []config.Config
	for _, sc := range s.store.Schemas().All() {
		if modelKind(sc.GroupKind) {
			configs = append(configs, s.store.List(sc.GroupKind, "")...)
		}
	}
	svcs := s.registry.Services()
	eps := make(map[model.ServiceKey][]*model.Endpoint, len(svcs))
	for _, svc := range svcs {
		eps[svc.Key()] = s.registry.Endpoints(svc.Key())
	}
	return model.NewSnapshot(model.SnapshotInput{
		Version:      strconv.FormatUint(s.version.Add(1), 10),
		Mesh:         s.cfg.Mesh,
		DomainSuffix: s.cfg.DomainSuffix,
		Configs:      configs,
		Services:     svcs,
		Endpoints:    eps,
		// New jwksUri values are fetched here (bounded by the resolver's
		// timeout); known ones come from its cache.
		JWKS: s.jwks.Keys(ctx, model.JWKSURIs(configs)),
	})
}

// Ready is closed once the first snapshot has been published.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// XDSAddr returns the xDS listener's address once Run has started listening.
func (s *Server) XDSAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.xdsAddr
}

// SecureGRPCAddr returns the CA listener's address (nil if disabled).
func (s *Server) SecureGRPCAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.secAddr
}

// MonitoringAddr returns the monitoring listener's address (nil if disabled).
func (s *Server) MonitoringAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.monAddr
}

// Snapshot returns the latest published snapshot (nil before Ready).
func (s *Server) Snapshot() *model.Snapshot { return s.snap.Load() }

// Problems returns the configuration problems of every source.
func (s *Server) Problems() []store.Problem { return s.store.Problems() }

// Clients returns the connected proxies' sync status.
func (s *Server) Clients() []server.ClientStatus { return s.xds.Clients() }

func (s *Server) monitoringHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-s.ready:
			fmt.Fprintln(w, "ready")
		default:
			http.Error(w, "not ready: configuration sources syncing", http.StatusServiceUnavailable)
		}
	})
	// Profiles only for callers on this host (SECURITY.md E9).
	mux.Handle("/debug/pprof/", localonly.Wrap(http.HandlerFunc(pprof.Index), "the debug endpoint"))
	mux.Handle("/debug/pprof/profile", localonly.Wrap(http.HandlerFunc(pprof.Profile), "the debug endpoint"))
	// Proxies' sync status and config (proxy-status, proxy-config).
	mux.Handle("/debug/", localonly.Wrap(s.xds.DebugHandler(server.DebugConfig{}), "the debug endpoint"))
	s.mountDashboard(mux) // dashboard.go
	return mux
}
