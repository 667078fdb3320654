package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/dataplane/execpages"
	"github.com/trellismesh/trellis/internal/dataplane/gctune"
	dphttp "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
	"github.com/trellismesh/trellis/internal/dataplane/secrets"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
	"github.com/trellismesh/trellis/internal/dataplane/xdsset"
)

// Config configures a sidecar. cmd fills it from flags.
type Config struct {
	// XDSAddress is the control plane's xDS address (host:port). Required.
	XDSAddress string
	// Node identifies the workload. Required.
	Node *corev3.Node
	// Protocol selects delta (default) or state-of-the-world xDS.
	Protocol xdsclient.Protocol
	// AdminAddress serves the admin endpoint (default 127.0.0.1:15000; "-"
	// disables it).
	AdminAddress string
	// HealthAddress serves /healthz/ready (default :15021; "-" disables).
	HealthAddress string
	// MetricsAddress serves the merged metrics, /stats/prometheus (default
	// :15020; "-" disables).
	MetricsAddress string
	// BindAddress, when set, replaces the wildcard address (0.0.0.0, ::)
	// of the listeners that bind a socket, so that several sidecars can run
	// on one host, each on its own loopback address (local mode).
	BindAddress string
	// DrainDuration is how long the proxy keeps serving once told to
	// terminate (ctx done, SIGTERM), with inbound clients asked to go away,
	// before it closes its listeners and connections; also how long
	// connections of replaced or removed listeners may finish, and the
	// graceful period of /drain_listeners?graceful. Istio's
	// terminationDrainDuration; default 5s.
	DrainDuration time.Duration
	// ExitOnZeroActiveConnections is Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS:
	// on termination the proxy drains as usual but, instead of serving for
	// DrainDuration, waits MinimumDrainDuration and then exits as soon as
	// its listeners have no open downstream connection left (checked at
	// once, then every second; the explicit proxy's count, the admin,
	// health and metrics servers' do not). As in Istio, DrainDuration does
	// not bound that wait: Stop (a second signal, POST /quitquitquit) or
	// the orchestrator's kill at the end of its grace period does.
	ExitOnZeroActiveConnections bool
	// MinimumDrainDuration is Istio's MINIMUM_DRAIN_DURATION: with
	// ExitOnZeroActiveConnections, how long the proxy drains before it
	// checks for active connections. Default 5s.
	MinimumDrainDuration time.Duration
	// KeepStartupPages keeps the executable's pages mapped after start-up.
	// By default, once the first configuration (and later, a large push)
	// has been applied and has settled, the sidecar drops its mappings of
	// them (package execpages: the pages stay in the page cache, those in
	// use come back by minor faults) so that its resident set follows its
	// working set.
	KeepStartupPages bool
	// ExplicitProxyAddress, when set (ip:port), opens an HTTP forward
	// proxy there: the outbound routes reached without traffic capture
	// (local mode without root). See explicit.go.
	ExplicitProxyAddress string
	// AppMetricsURL, when set, is the application's Prometheus endpoint
	// whose metrics the merged metrics port appends to the proxy's.
	AppMetricsURL string
	// AppMetricsTimeout bounds each scrape of AppMetricsURL (default 5s).
	AppMetricsTimeout time.Duration
	// AppProbers, when set, is the JSON of the application's original
	// probes (ISTIO_KUBE_APP_PROBERS, written by the injector): the
	// metrics port then serves /app-health/... (apphealth.go).
	AppProbers string
	// XDSServerName, when set, makes the xDS connection mutual TLS (the
	// control plane's secure port, Istio's discoveryAddress :15012): the
	// workload certificate is the client certificate and the control
	// plane must present a certificate for this name under the mesh
	// roots. It needs Identity.CAAddress; the xDS stream then starts once
	// the first certificate has arrived. Empty: plaintext xDS.
	XDSServerName string
	// Identity, when Identity.CAAddress is set, obtains and renews the
	// workload certificate from the mesh CA (its Metrics and Logger are
	// filled here); readiness then waits for it. Without it the proxy has
	// no mesh identity: "default" and "ROOTCA" are not available.
	Identity identity.Config
	// OriginalDst, when set, recovers the original destination of
	// connections the capture listeners accept, in place of
	// SO_ORIGINAL_DST (tests that reach the inbound listener without
	// iptables). Nil: capture.OriginalDst.
	OriginalDst func(*net.TCPConn) (netip.AddrPort, error)
	// MaxConnections limits the open connections of each listener socket
	// (inbound 15006, outbound 15001, ...; SECURITY C8): beyond it new
	// connections are closed at accept and counted in
	// envoy_listener_downstream_cx_overflow, existing ones are served.
	// 0: listener.DefaultMaxConnections; negative: no limit.
	MaxConnections int
	Logger         *slog.Logger
}

// Sidecar is a running sidecar proxy.
type Sidecar struct {
	cfg       Config
	log       *slog.Logger
	clusters  *manager.Manager
	routes    *dphttp.RouteTables
	listeners *listener.Manager
	xds       *xdsclient.Client
	metrics   *telemetry.Metrics
	tel       *telemetryOut     // access logs and tracing (telemetry.go)
	app       *appMetrics       // nil without AppMetricsURL
	appHealth *appHealth        // nil without AppProbers
	explicit  *explicitProxy    // nil without ExplicitProxyAddress
	id        *identity.Manager // nil without Identity.CAAddress
	secrets   *secrets.Local
	life      lifecycle
	release   *gctune.Releaser // returns the heap a large apply freed to the OS

	// mu guards routeVersions, the versions of the RDS tables currently
	// stored by name, and bound, the addresses the admin, health and
	// metrics servers listen on.
	mu            sync.Mutex
	routeVersions map[string]string
	bound         map[string]net.Addr
}

// releaseStartupPages drops the executable's pages that start-up or a
// large push mapped, once the configuration has settled
// (Config.KeepStartupPages turns it off).
func (s *Sidecar) releaseStartupPages() {
	if s.cfg.KeepStartupPages {
		return
	}
	n, err := execpages.Release()
	if err != nil {
		s.log.Warn("executable pages kept mapped", "error", err)
		return
	}
	s.log.Debug("executable pages released", "bytes", n)
}

// New builds a sidecar; it does no I/O.
func New(cfg Config) (*Sidecar, error) {
	if cfg.XDSAddress == "" {
		return nil, errors.New("sidecar: xDS address is required")
	}
	if cfg.Node == nil {
		return nil, errors.New("sidecar: node is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AdminAddress == "" {
		cfg.AdminAddress = "127.0.0.1:15000"
	}
	if cfg.HealthAddress == "" {
		cfg.HealthAddress = ":15021"
	}
	if cfg.MetricsAddress == "" {
		cfg.MetricsAddress = ":15020"
	}
	if cfg.DrainDuration == 0 {
		cfg.DrainDuration = 5 * time.Second
	}
	if cfg.MinimumDrainDuration == 0 {
		cfg.MinimumDrainDuration = 5 * time.Second
	}
	local := telemetry.LocalWorkload(cfg.Node)
	if id := cfg.Identity; id.CAAddress != "" {
		// destination_principal of inbound mutual TLS: the identity the
		// proxy's certificate carries (identity.New checks the parts).
		if u, err := identity.SPIFFEID(id.TrustDomain, id.Namespace, id.ServiceAccount); err == nil {
			local.Principal = u.String()
		}
	}
	s := &Sidecar{cfg: cfg, log: cfg.Logger, routes: &dphttp.RouteTables{}, routeVersions: map[string]string{},
		bound:   map[string]net.Addr{},
		metrics: telemetry.New(telemetry.Config{Local: local}),
		life:    newLifecycle(),
	}
	s.release = gctune.NewReleaser(gctune.ReleaseConfig{Settled: s.releaseStartupPages})
	var err error
	if cfg.Identity.CAAddress != "" {
		idc := cfg.Identity
		idc.Logger = cfg.Logger.With("component", "identity")
		if idc.Metrics, err = identity.NewPrometheus(s.metrics.Registry()); err != nil {
			return nil, fmt.Errorf("sidecar: identity metrics: %w", err)
		}
		if s.id, err = identity.New(idc); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
	}
	scfg := secrets.Config{Logger: cfg.Logger.With("component", "secrets")}
	if s.id != nil {
		scfg.Workload = s.id
	}
	s.secrets = secrets.New(scfg)
	if s.clusters, err = manager.New(manager.Config{
		Transports: manager.TLSTransports(s.secrets),
		Logger:     cfg.Logger.With("component", "clusters"),
	}); err != nil {
		return nil, err
	}
	if s.tel, err = newTelemetryOut(s.clusters, s.metrics, cfg.Logger.With("component", "telemetry")); err != nil {
		return nil, err
	}
	tcpFilters, err := tcp.NewBuilder(tcp.Config{Upstream: s.clusters, Observer: s.metrics.TCP(), AccessLogs: s.tel.logs, Logger: cfg.Logger.With("component", "tcp")})
	if err != nil {
		return nil, err
	}
	authz, err := newAuthzFilters(s.metrics, s.clusters, local.Principal, cfg.Logger.With("component", "ext_authz"))
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	httpReg := s.tel.filters()
	maps.Copy(httpReg, authz.http)
	httpLimits, err := newHTTPLimitMetrics(s.metrics.Registry())
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	httpFilters := dphttp.NetworkFilter{Deps: dphttp.Deps{Routes: s.routes, Upstream: s.clusters, Observer: s.metrics, Stats: httpLimits, Filters: httpReg, LocalIdentity: local.Principal, Logger: cfg.Logger.With("component", "http")}}
	filters := listener.Registry{
		tcp.TypeURL:    tcpFilters,
		dphttp.TypeURL: httpFilters,
	}
	maps.Copy(filters, authz.network)
	if cfg.AppMetricsURL != "" {
		if s.app, err = newAppMetrics(cfg.AppMetricsURL, cfg.AppMetricsTimeout, s.metrics.Registry(), cfg.Logger.With("component", "metrics")); err != nil {
			return nil, err
		}
	}
	if cfg.AppProbers != "" {
		if s.appHealth, err = newAppHealth(cfg.AppProbers, cfg.BindAddress); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
	}
	if cfg.ExplicitProxyAddress != "" {
		if s.explicit, err = newExplicitProxy(explicitConfig{
			Address:      cfg.ExplicitProxyAddress,
			Node:         cfg.Node,
			HTTP:         httpFilters,
			TCP:          tcpFilters,
			DrainTimeout: cfg.DrainDuration,
			Logger:       cfg.Logger.With("component", "explicit_proxy"),
		}); err != nil {
			return nil, err
		}
	}
	lm, err := newListenerMetrics(s.metrics.Registry())
	if err != nil {
		return nil, fmt.Errorf("sidecar: %w", err)
	}
	if s.listeners, err = listener.New(listener.Config{
		MaxConnections: cfg.MaxConnections,
		Filters:        filters,
		OriginalDst:    cfg.OriginalDst,
		Metrics:        lm,
		Secrets:        s.secrets,
		DrainTimeout:   cfg.DrainDuration,
		Logger:         cfg.Logger.With("component", "listeners"),
	}); err != nil {
		return nil, err
	}
	xc := xdsclient.Config{
		Server:   cfg.XDSAddress,
		Node:     cfg.Node,
		Consumer: s,
		Protocol: cfg.Protocol,
		Logger:   cfg.Logger.With("component", "xds"),
	}
	if cfg.XDSServerName != "" {
		if s.id == nil {
			return nil, errors.New("sidecar: xDS over mutual TLS needs a workload identity (Identity.CAAddress)")
		}
		if xc.Credentials, err = xdsclient.MeshTLS(s.secrets, cfg.XDSServerName); err != nil {
			return nil, fmt.Errorf("sidecar: %w", err)
		}
	}
	if s.xds, err = xdsclient.New(xc); err != nil {
		return nil, err
	}
	return s, nil
}

// Apply implements xdsclient.Consumer: each type goes to its component,
// which compiles only the resources whose version changed and keeps no
// decoded message; per-resource errors NACK the response and keep the
// last good state. A large change's freed heap goes back to the OS
// afterwards (gctune.Releaser, off this goroutine).
func (s *Sidecar) Apply(set *xdsclient.Set) map[string]error {
	defer s.release.Track()()
	switch set.TypeURL() {
	case xdsclient.ClusterType:
		errs := s.clusters.ApplyClusterSet(set)
		if len(errs) == 0 {
			if err := s.metrics.SetClusters(set); err != nil {
				s.log.Warn("metrics: cluster metadata not updated", "error", err)
			}
			if s.explicit != nil {
				s.explicit.setClusters(set.Names())
			}
		}
		return errs
	case xdsclient.EndpointType:
		errs := s.clusters.ApplyEndpointSet(set)
		if len(errs) == 0 {
			if err := s.metrics.SetEndpoints(set); err != nil {
				s.log.Warn("metrics: endpoint metadata not updated", "error", err)
			}
		}
		return errs
	case xdsclient.RouteType:
		return s.applyRoutes(set)
	case xdsclient.ListenerType:
		return s.applyListeners(set)
	}
	return nil
}

// applyRoutes compiles the route configurations whose version changed
// and stores the tables only if all compile, so a NACKed response changes
// nothing.
func (s *Sidecar) applyRoutes(set *xdsclient.Set) map[string]error {
	names := set.Names()
	s.mu.Lock()
	prev := s.routeVersions
	s.mu.Unlock()
	tables := map[string]*route.Table{}
	errs := map[string]error{}
	for _, name := range names {
		if xdsset.Unchanged(prev[name], set.Version(name)) {
			continue
		}
		rc, err := setMsg[*routev3.RouteConfiguration](set, name)
		if err != nil {
			errs[name] = err
			continue
		}
		t, err := route.Compile(rc)
		if err != nil {
			errs[name] = err
			continue
		}
		tables[name] = t
	}
	if len(errs) > 0 {
		return errs
	}
	if s.explicit != nil {
		// The explicit proxy's merged table, from every configuration;
		// never a reason to NACK.
		rcs := make(map[string]*routev3.RouteConfiguration, len(names))
		for _, name := range names {
			if rc, err := setMsg[*routev3.RouteConfiguration](set, name); err == nil {
				rcs[name] = rc
			}
		}
		s.routes.Set(explicitRouteName, s.explicit.routes(rcs))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, t := range tables {
		s.routes.Set(name, t)
	}
	versions := make(map[string]string, len(names))
	for _, name := range names {
		versions[name] = set.Version(name)
	}
	for name := range s.routeVersions {
		if _, ok := versions[name]; !ok {
			s.routes.Set(name, nil)
		}
	}
	s.routeVersions = versions
	return nil
}

// setMsg returns resource name of set as a T.
func setMsg[T proto.Message](set xdsset.Set, name string) (T, error) {
	var zero T
	msg, err := set.Msg(name)
	if err != nil {
		return zero, err
	}
	t, ok := msg.(T)
	if !ok || msg == nil {
		return zero, fmt.Errorf("resource is a %T, not a %T", msg, zero)
	}
	return t, nil
}

// applyListeners binds and swaps the listeners whose version changed; the
// listener manager is all or nothing and names each rejected listener.
func (s *Sidecar) applyListeners(set *xdsclient.Set) map[string]error {
	err := s.listeners.UpdateSet(reboundSet{Set: set, s: s})
	if err == nil {
		if s.explicit != nil {
			// The explicit proxy follows the outbound HTTP settings.
			list := make([]*listenerv3.Listener, 0, set.Len())
			for _, name := range set.Names() {
				if l, err := setMsg[*listenerv3.Listener](set, name); err == nil {
					list = append(list, l)
				}
			}
			s.explicit.setTemplate(list)
		}
		return nil
	}
	var ue *listener.UpdateError
	if errors.As(err, &ue) {
		return ue.Errors
	}
	// Not attributable to one listener: reject them all with it.
	out := map[string]error{}
	for _, name := range set.Names() {
		out[name] = err
	}
	return out
}

// reboundSet is the LDS set with BindAddress applied (rebind). The
// versions stay the resources': BindAddress does not change while the
// sidecar runs.
type reboundSet struct {
	*xdsclient.Set
	s *Sidecar
}

func (r reboundSet) Msg(name string) (proto.Message, error) {
	l, err := setMsg[*listenerv3.Listener](r.Set, name)
	if err != nil {
		return nil, err
	}
	return r.s.rebind(l), nil
}

// rebind applies BindAddress to a listener that binds a wildcard socket.
func (s *Sidecar) rebind(l *listenerv3.Listener) *listenerv3.Listener {
	if s.cfg.BindAddress == "" {
		return l
	}
	if bp := l.GetBindToPort(); bp != nil && !bp.GetValue() {
		return l
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil || (sa.GetAddress() != "0.0.0.0" && sa.GetAddress() != "::") {
		return l
	}
	c := proto.Clone(l).(*listenerv3.Listener)
	c.GetAddress().GetSocketAddress().Address = s.cfg.BindAddress
	return c
}

// Run runs the sidecar until ctx is done, then terminates it gracefully
// (see terminate): not ready, inbound listeners drained for
// DrainDuration (or, with ExitOnZeroActiveConnections, until no
// connection is left after MinimumDrainDuration), then everything closed; it returns nil then. Stop (and
// POST /quitquitquit) ends it at once, also during the drain. A component
// failing ends it with that error.
func (s *Sidecar) Run(ctx context.Context) error {
	// Components outlive ctx by the drain period: they stop on runCtx.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer s.release.Stop()
	var bg sync.WaitGroup // admin-started drains
	defer bg.Wait()
	servers, err := s.serve(runCtx, &bg)
	if err != nil {
		return err
	}
	defer func() {
		for _, hs := range servers {
			hs.Close()
		}
	}()
	if s.explicit != nil {
		if err := s.explicit.start(); err != nil {
			return err
		}
	}

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(runCtx); err != nil && runCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	run("clusters", s.clusters.Run)
	run("listeners", s.listeners.Run)
	run("telemetry", s.tel.run)
	if s.explicit != nil {
		run("explicit proxy", s.explicit.run)
	}
	if s.id != nil {
		run("identity", s.id.Run)
	}
	run("xds", s.runXDS)
	s.log.Info("sidecar running", "xds", s.cfg.XDSAddress, "xdsTLS", s.cfg.XDSServerName != "", "node", s.cfg.Node.GetId(), "admin", s.cfg.AdminAddress)
	select {
	case <-ctx.Done():
		err = s.terminate(errc)
	case <-s.life.stop:
		s.log.Info("stopping now")
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
}

// runXDS runs the xDS client; over mutual TLS it first waits for the
// workload certificate it presents.
func (s *Sidecar) runXDS(ctx context.Context) error {
	if s.cfg.XDSServerName != "" {
		if err := s.secrets.Wait(ctx, secrets.WorkloadCertificate); err != nil {
			return fmt.Errorf("waiting for the workload certificate: %w", err)
		}
	}
	return s.xds.Run(ctx)
}

// serve starts the admin, health and metrics servers.
func (s *Sidecar) serve(runCtx context.Context, bg *sync.WaitGroup) ([]*http.Server, error) {
	var servers []*http.Server
	for _, srv := range []struct {
		name, addr string
		handler    http.Handler
	}{
		{"admin", s.cfg.AdminAddress, s.adminHandler(runCtx, bg)},
		{"health", s.cfg.HealthAddress, s.healthHandler()},
		{"metrics", s.cfg.MetricsAddress, s.metricsHandler()},
	} {
		if srv.addr == "-" {
			continue
		}
		l, err := net.Listen("tcp", srv.addr)
		if err != nil {
			for _, hs := range servers {
				hs.Close()
			}
			return nil, fmt.Errorf("%s: listening on %s: %w", srv.name, srv.addr, err)
		}
		s.mu.Lock()
		s.bound[srv.name] = l.Addr()
		s.mu.Unlock()
		hs := &http.Server{Handler: srv.handler, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, hs)
		go hs.Serve(l)
	}
	return servers, nil
}

// Addr returns the address the "admin", "health", "metrics" or
// "explicit_proxy" server is bound to, once Run has bound it.
func (s *Sidecar) Addr(server string) (net.Addr, bool) {
	if server == explicitListenerName {
		if s.explicit == nil {
			return nil, false
		}
		return s.explicit.addr()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.bound[server]
	return a, ok
}

// Ready reports whether the proxy has listeners from the control plane
// and is neither draining nor failing health checks.
func (s *Sidecar) Ready() bool {
	return s.readiness() == ""
}

// configured reports whether listeners came from the control plane.
func (s *Sidecar) configured() bool {
	for _, t := range s.xds.Status().Types {
		if t.TypeURL == xdsclient.ListenerType && !t.LastUpdate.IsZero() {
			return true
		}
	}
	return false
}

// Secrets is the proxy's secret store: the SDS names of generated TLS
// contexts ("default", "ROOTCA", file-cert:..., file-root:...) resolved to
// live material, for the transport sockets.
func (s *Sidecar) Secrets() secrets.Store { return s.secrets }

// Status returns the xDS client's status.
func (s *Sidecar) Status() xdsclient.Status { return s.xds.Status() }

// ListenerAddr returns the bound address of a listener.
func (s *Sidecar) ListenerAddr(name string) (net.Addr, bool) { return s.listeners.Addr(name) }
