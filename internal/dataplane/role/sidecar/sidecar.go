package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	dphttp "github.com/trellismesh/trellis/internal/dataplane/http"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/route"
	"github.com/trellismesh/trellis/internal/dataplane/tcp"
	"github.com/trellismesh/trellis/internal/dataplane/telemetry"
	"github.com/trellismesh/trellis/internal/dataplane/upstream/manager"
	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
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
	// DrainDuration is how long established connections of removed
	// listeners may finish (default 5s).
	DrainDuration time.Duration
	Logger        *slog.Logger
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

	// mu guards routeNames, the RDS names currently stored.
	mu         sync.Mutex
	routeNames map[string]bool
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
	s := &Sidecar{cfg: cfg, log: cfg.Logger, routes: &dphttp.RouteTables{}, routeNames: map[string]bool{},
		metrics: telemetry.New(telemetry.Config{Local: telemetry.LocalWorkload(cfg.Node)})}
	var err error
	if s.clusters, err = manager.New(manager.Config{Logger: cfg.Logger.With("component", "clusters")}); err != nil {
		return nil, err
	}
	tcpFilters, err := tcp.NewBuilder(tcp.Config{Upstream: s.clusters, Observer: s.metrics.TCP(), Logger: cfg.Logger.With("component", "tcp")})
	if err != nil {
		return nil, err
	}
	filters := listener.Registry{
		tcp.TypeURL:    tcpFilters,
		dphttp.TypeURL: dphttp.NetworkFilter{Deps: dphttp.Deps{Routes: s.routes, Upstream: s.clusters, Observer: s.metrics, Logger: cfg.Logger.With("component", "http")}},
	}
	if s.listeners, err = listener.New(listener.Config{
		Filters:      filters,
		DrainTimeout: cfg.DrainDuration,
		Logger:       cfg.Logger.With("component", "listeners"),
	}); err != nil {
		return nil, err
	}
	if s.xds, err = xdsclient.New(xdsclient.Config{
		Server:   cfg.XDSAddress,
		Node:     cfg.Node,
		Consumer: s,
		Protocol: cfg.Protocol,
		Logger:   cfg.Logger.With("component", "xds"),
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Apply implements xdsclient.Consumer: each type goes to its component;
// per-resource errors NACK the response and keep the last good state.
func (s *Sidecar) Apply(typeURL string, resources map[string]proto.Message) map[string]error {
	switch typeURL {
	case xdsclient.ClusterType:
		cs := typed[*clusterv3.Cluster](resources)
		errs := s.clusters.ApplyClusters(cs)
		if len(errs) == 0 {
			s.metrics.SetClusters(cs)
		}
		return errs
	case xdsclient.EndpointType:
		es := typed[*endpointv3.ClusterLoadAssignment](resources)
		errs := s.clusters.ApplyEndpoints(es)
		if len(errs) == 0 {
			s.metrics.SetEndpoints(es)
		}
		return errs
	case xdsclient.RouteType:
		return s.applyRoutes(typed[*routev3.RouteConfiguration](resources))
	case xdsclient.ListenerType:
		return s.applyListeners(typed[*listenerv3.Listener](resources))
	}
	return nil
}

func typed[T proto.Message](in map[string]proto.Message) map[string]T {
	out := make(map[string]T, len(in))
	for k, v := range in {
		if t, ok := v.(T); ok {
			out[k] = t
		}
	}
	return out
}

// applyRoutes compiles every route configuration first and stores them only
// if all compile, so a NACKed response changes nothing.
func (s *Sidecar) applyRoutes(rcs map[string]*routev3.RouteConfiguration) map[string]error {
	tables := make(map[string]*route.Table, len(rcs))
	errs := map[string]error{}
	for name, rc := range rcs {
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
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, t := range tables {
		s.routes.Set(name, t)
	}
	for name := range s.routeNames {
		if _, ok := tables[name]; !ok {
			s.routes.Set(name, nil)
		}
	}
	s.routeNames = map[string]bool{}
	for name := range tables {
		s.routeNames[name] = true
	}
	return nil
}

// applyListeners binds and swaps listeners; the listener manager is all or
// nothing and names each rejected listener.
func (s *Sidecar) applyListeners(ls map[string]*listenerv3.Listener) map[string]error {
	names := make([]string, 0, len(ls))
	for name := range ls {
		names = append(names, name)
	}
	sort.Strings(names)
	list := make([]*listenerv3.Listener, 0, len(ls))
	for _, name := range names {
		list = append(list, s.rebind(ls[name]))
	}
	err := s.listeners.Update(list)
	if err == nil {
		return nil
	}
	var ue *listener.UpdateError
	if errors.As(err, &ue) {
		return ue.Errors
	}
	// Not attributable to one listener: reject them all with it.
	out := map[string]error{}
	for _, name := range names {
		out[name] = err
	}
	return out
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

// Run runs the sidecar until ctx is done or /quitquitquit is called.
func (s *Sidecar) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var servers []*http.Server
	for _, srv := range []struct {
		addr    string
		handler http.Handler
	}{
		{s.cfg.AdminAddress, s.adminHandler(cancel)},
		{s.cfg.HealthAddress, s.healthHandler()},
		{s.cfg.MetricsAddress, s.metricsHandler()},
	} {
		if srv.addr == "-" {
			continue
		}
		l, err := net.Listen("tcp", srv.addr)
		if err != nil {
			for _, hs := range servers {
				hs.Close()
			}
			return fmt.Errorf("listening on %s: %w", srv.addr, err)
		}
		hs := &http.Server{Handler: srv.handler, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, hs)
		go hs.Serve(l)
	}
	defer func() {
		for _, hs := range servers {
			hs.Close()
		}
	}()

	var wg sync.WaitGroup
	errc := make(chan error, 3)
	run := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		})
	}
	run("clusters", s.clusters.Run)
	run("listeners", s.listeners.Run)
	run("xds", s.xds.Run)
	s.log.Info("sidecar running", "xds", s.cfg.XDSAddress, "node", s.cfg.Node.GetId(), "admin", s.cfg.AdminAddress)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	return err
}

// Ready reports whether the proxy has listeners from the control plane.
func (s *Sidecar) Ready() bool {
	for _, t := range s.xds.Status().Types {
		if t.TypeURL == xdsclient.ListenerType && !t.LastUpdate.IsZero() {
			return true
		}
	}
	return false
}

// Status returns the xDS client's status.
func (s *Sidecar) Status() xdsclient.Status { return s.xds.Status() }

// ListenerAddr returns the bound address of a listener.
func (s *Sidecar) ListenerAddr(name string) (net.Addr, bool) { return s.listeners.Addr(name) }
