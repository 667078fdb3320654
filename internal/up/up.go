package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/ca/bootstrap"
	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/config/store/file"
	"github.com/trellismesh/trellis/internal/config/store/memory"
	"github.com/trellismesh/trellis/internal/discovery"
	"github.com/trellismesh/trellis/internal/model"
)

// Defaults of Config.
const (
	DefaultXDSAddress        = "127.0.0.1:15010"
	DefaultMonitoringAddress = "127.0.0.1:15014"
	DefaultCAAddress         = "127.0.0.1:15012"
	DefaultTrustDomain       = "cluster.local"
	DefaultIngressAddress    = "127.0.0.1:9080"
	DefaultDrainDuration     = 2 * time.Second
	DefaultReadyTimeout      = 60 * time.Second
)

// The sidecar's capture listeners, bound to the workload's address by
// --bind-address: up checks they are free before starting.
const (
	outboundCapturePort = 15001
	inboundCapturePort  = 15006
)

// Ports are the ports of each sidecar on its workload's own address.
type Ports struct {
	Admin, Health, Metrics uint16
	// ExplicitProxy is the sidecar's HTTP forward proxy, the outbound
	// address the workload sends its calls to. It cannot be 15001: the
	// sidecar's outbound capture listener binds that port on the same
	// address.
	ExplicitProxy uint16
}

// DefaultPorts are Istio's sidecar ports, plus 15080 for the explicit
// proxy.
var DefaultPorts = Ports{Admin: 15000, Health: 15021, Metrics: 15020, ExplicitProxy: 15080}

// Config is what `trellis up` runs. Zero fields take the defaults above.
type Config struct {
	// Dir is the directory of Istio YAML. Required.
	Dir string
	// Executable is the trellis binary run as `proxy sidecar` and for
	// commands whose first word is "trellis" (the CLI passes
	// os.Executable(); tests a freshly built binary). Required.
	Executable string
	// XDSAddress and MonitoringAddress are the control plane's listeners.
	XDSAddress, MonitoringAddress string
	// IngressAddress is the front door to the workload annotated with
	// AnnotationIngress; "-" disables it.
	IngressAddress string
	// CAAddress is the control plane's secure gRPC port: Istio's CA
	// service (and xDS over mTLS). The sidecars get their certificates
	// there with a bootstrap token.
	CAAddress string
	// CADir holds the CA (created with a self-signed root on first start,
	// kept across restarts) and the bootstrap tokens, CADir/bootstrap.
	// Default: StateDir/ca.
	CADir string
	// TrustDomain of the workloads' SPIFFE identities (default
	// cluster.local).
	TrustDomain string
	// DisableMTLS runs the control plane without its CA and the sidecars
	// without identities: no certificates, no mesh TLS (--mtls=false).
	DisableMTLS bool
	// StateDir holds the components' log files (default: a new temporary
	// directory, kept after exit so that the logs can be read).
	StateDir string
	// Ports of the sidecars (zero fields: DefaultPorts).
	Ports Ports
	// DrainDuration is the sidecars' --drain-duration.
	DrainDuration time.Duration
	// ReadyTimeout bounds the wait for each component to become ready.
	ReadyTimeout time.Duration
	// RunFile, when set, records the running mesh (RunInfo) once it is
	// ready, for `trellis apply`, `delete` and `describe`; removed on exit.
	RunFile string
	// Out receives the progress lines (nil: discarded).
	Out io.Writer
	// Netns (root only, Linux) runs each workload in its own network
	// namespace on NetnsBridge with transparent capture (netns.go).
	Netns bool
	// NetnsBridge is the bridge device (at most 10 characters; default
	// trellis0) and the prefix of the namespaces' names.
	NetnsBridge string
	// NetnsSubnet is the bridge's IPv4 subnet (default 10.77.0.0/24): the
	// bridge takes its first address, the namespaces the others.
	NetnsSubnet netip.Prefix
}

// Up runs a local mesh: the control plane in-process, a sidecar process
// per WorkloadEntry and the workloads the directory says how to run.
type Up struct {
	cfg   Config
	out   io.Writer
	ready chan struct{}

	// mu guards procs and the addresses, written by Run and read by the
	// accessors.
	mu         sync.Mutex
	procs      []*process
	ingress    string
	monitoring string
	xds        string
	ca         string
}

// New checks the configuration. It does no I/O.
func New(cfg Config) (*Up, error) {
	if cfg.Dir == "" {
		return nil, errors.New("up: a configuration directory is required")
	}
	if cfg.Executable == "" {
		return nil, errors.New("up: the trellis executable is required")
	}
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&cfg.XDSAddress, DefaultXDSAddress)
	def(&cfg.MonitoringAddress, DefaultMonitoringAddress)
	def(&cfg.IngressAddress, DefaultIngressAddress)
	def(&cfg.CAAddress, DefaultCAAddress)
	def(&cfg.TrustDomain, DefaultTrustDomain)
	defPort := func(p *uint16, d uint16) {
		if *p == 0 {
			*p = d
		}
	}
	defPort(&cfg.Ports.Admin, DefaultPorts.Admin)
	defPort(&cfg.Ports.Health, DefaultPorts.Health)
	defPort(&cfg.Ports.Metrics, DefaultPorts.Metrics)
	defPort(&cfg.Ports.ExplicitProxy, DefaultPorts.ExplicitProxy)
	if cfg.Ports.ExplicitProxy == outboundCapturePort || cfg.Ports.ExplicitProxy == inboundCapturePort {
		return nil, fmt.Errorf("up: explicit proxy port %d is taken by the sidecar's capture listener", cfg.Ports.ExplicitProxy)
	}
	if cfg.DrainDuration <= 0 {
		cfg.DrainDuration = DefaultDrainDuration
	}
	def(&cfg.NetnsBridge, DefaultNetnsBridge)
	if !cfg.NetnsSubnet.IsValid() {
		cfg.NetnsSubnet = DefaultNetnsSubnet
	}
	if cfg.Netns {
		if len(cfg.NetnsBridge) > 10 {
			return nil, fmt.Errorf("up: --netns-bridge %q: at most 10 characters (veth names add a suffix; Linux allows 15)", cfg.NetnsBridge)
		}
		if !cfg.NetnsSubnet.Addr().Is4() || cfg.NetnsSubnet.Bits() > 29 {
			return nil, fmt.Errorf("up: --netns-subnet %s: want an IPv4 subnet of at least 8 addresses, such as %s", cfg.NetnsSubnet, DefaultNetnsSubnet)
		}
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	return &Up{cfg: cfg, out: out, ready: make(chan struct{})}, nil
}

// Ready is closed once every component is ready and the summary printed.
func (u *Up) Ready() <-chan struct{} { return u.ready }

// IngressAddr is the front door's address ("" before ready or without one).
func (u *Up) IngressAddr() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ingress
}

// XDSAddr is the control plane's xDS address ("" before it listens).
func (u *Up) XDSAddr() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.xds
}

// CAAddr is the CA's address ("" before it listens or with DisableMTLS).
func (u *Up) CAAddr() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ca
}

// CADir is the CA directory (set once Run has started; "" with
// DisableMTLS).
func (u *Up) CADir() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cfg.CADir
}

// PIDs returns the process IDs of every child started so far.
func (u *Up) PIDs() []int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]int, len(u.procs))
	for i, p := range u.procs {
		out[i] = p.pid()
	}
	return out
}

// StateDir is where the log files are (set once Run has started).
func (u *Up) StateDir() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cfg.StateDir
}

// StartError says which component failed to start, where its log is and
// what to do about it. Everything started before it has been stopped.
type StartError struct {
	Component string
	Err       error
	Log       string // log file path, "" if none
	Tail      string // its last lines
	Fix       string
}

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failed to start: %v (everything started has been stopped)", e.Component, e.Err)
	if e.Log != "" {
		fmt.Fprintf(&b, "\n  log: %s", e.Log)
		if e.Tail != "" {
			b.WriteString("\n  last lines:\n    ")
			b.WriteString(strings.ReplaceAll(e.Tail, "\n", "\n    "))
		}
	}
	if e.Fix != "" {
		fmt.Fprintf(&b, "\n  fix: %s", e.Fix)
	}
	return b.String()
}

func (e *StartError) Unwrap() error { return e.Err }

// PortInUseError is a listen address that is taken before anything starts.
type PortInUseError struct {
	Address string
	What    string // "the control plane's xDS address"
	Fix     string
	Err     error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port in use: %s (%s) is not free: %v (nothing was started)\n  fix: %s", e.Address, e.What, e.Err, e.Fix)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// Run starts everything, prints where to send traffic and blocks until ctx
// ends; then it stops the front door, the workloads, the sidecars (which
// drain) and the control plane, in that order. A component failing to
// start stops everything started before it and returns a *StartError; a
// directory that does not validate returns an *InvalidConfigError and a
// taken address a *PortInUseError, both before anything starts. Run
// returns nil when ctx ends.
func (u *Up) Run(ctx context.Context) error {
	cfg := u.cfg
	fmt.Fprintf(u.out, "reading %s\n", cfg.Dir)
	workloads, snap, err := plan(ctx, cfg.Dir, cfg.Ports.ExplicitProxy, freePort)
	if err != nil {
		return err
	}
	var (
		sidecars []config.Config
		alloc    *addrAllocator
		nw       *network
	)
	if cfg.Netns {
		// Capture handles inbound: no generated Sidecars; the workloads'
		// addresses move to their namespaces (overlay for the control
		// plane).
		bridge := cfg.NetnsSubnet.Masked().Addr().Next()
		if err := netnsPreflight(cfg.NetnsBridge, bridge); err != nil {
			return err
		}
		nw = &network{bridge: cfg.NetnsBridge, addr: bridge}
		alloc = newAddrAllocator(cfg.NetnsSubnet)
		if err = netnsAddresses(workloads, alloc, cfg.Ports.ExplicitProxy, nw); err != nil {
			return err
		}
		if cfg.XDSAddress, err = onBridge(cfg.XDSAddress, bridge); err != nil {
			return fmt.Errorf("--xds-address %w", err)
		}
		if cfg.CAAddress, err = onBridge(cfg.CAAddress, bridge); err != nil {
			return fmt.Errorf("--ca-address %w", err)
		}
		u.mu.Lock()
		u.cfg.XDSAddress, u.cfg.CAAddress = cfg.XDSAddress, cfg.CAAddress
		u.mu.Unlock()
	} else {
		if sidecars, err = inboundSidecars(snap, workloads); err != nil {
			return fmt.Errorf("invalid configuration in %s (nothing was started): %w", cfg.Dir, err)
		}
	}
	if err := u.preflight(workloads); err != nil {
		return err
	}
	if cfg.StateDir == "" {
		if cfg.StateDir, err = os.MkdirTemp("", "trellis-up-"); err != nil {
			return fmt.Errorf("creating the state directory: %w", err)
		}
	} else if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return fmt.Errorf("creating the state directory: %w", err)
	}
	if !cfg.DisableMTLS && cfg.CADir == "" {
		cfg.CADir = filepath.Join(cfg.StateDir, "ca")
	}
	if cfg.DisableMTLS {
		cfg.CADir = ""
	}
	u.mu.Lock()
	u.cfg.StateDir = cfg.StateDir
	u.cfg.CADir = cfg.CADir
	u.mu.Unlock()
	fmt.Fprintf(u.out, "logs in %s\n", cfg.StateDir)

	r := &running{up: u, alloc: alloc, members: map[string][]*process{}, removed: map[*process]bool{}}
	defer r.stop()
	if cfg.Netns {
		u.progress("bridge "+cfg.NetnsBridge, "creating ("+netip.PrefixFrom(nw.addr, cfg.NetnsSubnet.Bits()).String()+")")
		n, err := newNetwork(ctx, cfg.NetnsBridge, cfg.NetnsSubnet)
		r.net = n
		if err != nil {
			return u.startFailed(ctx, &StartError{Component: "bridge " + cfg.NetnsBridge, Err: err, Fix: "pass --netns-bridge / --netns-subnet that nothing else uses"})
		}
	}
	if err := r.controlPlane(ctx, sidecars, alloc); err != nil {
		return u.startFailed(ctx, err)
	}
	for _, w := range workloads {
		if cfg.Netns {
			if err := r.capture(ctx, w); err != nil {
				return u.startFailed(ctx, err)
			}
		}
		if err := r.workload(ctx, w); err != nil {
			return u.startFailed(ctx, err)
		}
	}
	if err := r.frontDoor(workloads); err != nil {
		return u.startFailed(ctx, err)
	}
	if cfg.RunFile != "" {
		u.mu.Lock()
		ri := RunInfo{PID: os.Getpid(), Dir: cfg.Dir, StateDir: cfg.StateDir, XDS: u.xds,
			Monitoring: u.monitoring, CA: u.ca, CADir: cfg.CADir, Ingress: u.ingress}
		u.mu.Unlock()
		if err := writeRunFile(cfg.RunFile, ri); err != nil {
			return err
		}
		defer removeRunFile(cfg.RunFile)
	}
	u.summary(workloads)
	close(u.ready)
	r.watch(ctx, workloads)
	fmt.Fprintln(u.out, "stopping")
	return nil
}

// startFailed turns an interrupted start into a clean exit.
func (u *Up) startFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		fmt.Fprintln(u.out, "interrupted while starting; stopping")
		return nil
	}
	return err
}

// preflight checks that every address up will listen on is free, so that
// a taken one fails before anything starts, with the flag or object to
// change.
func (u *Up) preflight(ws []Workload) error {
	cfg := u.cfg
	type want struct{ addr, what, fix string }
	wants := []want{
		{cfg.XDSAddress, "the control plane's xDS address", "stop what uses it (another trellis up or trellis discovery?) or pass --xds-address"},
	}
	if !cfg.DisableMTLS {
		wants = append(wants, want{cfg.CAAddress, "the control plane's CA (secure gRPC) address", "stop what uses it (another trellis up or trellis discovery?) or pass --ca-address"})
	}
	if cfg.MonitoringAddress != "-" {
		wants = append(wants, want{cfg.MonitoringAddress, "the control plane's monitoring address", "stop what uses it or pass --monitoring-address"})
	}
	if cfg.IngressAddress != "-" && hasIngress(ws) {
		wants = append(wants, want{cfg.IngressAddress, "the front door", "stop what uses it or pass --ingress"})
	}
	for _, w := range ws {
		if w.Netns != "" {
			continue // its own namespace: nothing else there
		}
		fix := fmt.Sprintf("stop what uses it (another trellis up?) or give WorkloadEntry %s another spec.address in %s", w.ID(), w.Source.File)
		addrs := u.workloadAddrs(w)
		keys := make([]string, 0, len(addrs))
		for a := range addrs {
			keys = append(keys, a)
		}
		sort.Strings(keys)
		for _, a := range keys {
			wants = append(wants, want{a, addrs[a], fix})
		}
	}
	for _, w := range wants {
		if ap, err := netip.ParseAddrPort(w.addr); err == nil && cfg.Netns && cfg.NetnsSubnet.Contains(ap.Addr()) {
			continue // on the bridge, which does not exist yet: bound at start
		}
		ln, err := net.Listen("tcp", w.addr)
		if err != nil {
			return &PortInUseError{Address: w.addr, What: w.what, Fix: w.fix, Err: err}
		}
		ln.Close()
	}
	return nil
}

func hasIngress(ws []Workload) bool {
	for _, w := range ws {
		if w.IngressPort != 0 {
			return true
		}
	}
	return false
}

// summary prints where to send traffic.
func (u *Up) summary(ws []Workload) {
	u.mu.Lock()
	ingress, mon, xds, caAddr := u.ingress, u.monitoring, u.xds, u.ca
	u.mu.Unlock()
	fmt.Fprintln(u.out, "")
	fmt.Fprintf(u.out, "mesh is up: control plane (xDS %s) and %d workloads\n", xds, len(ws))
	if caAddr != "" {
		fmt.Fprintf(u.out, "  workload certificates from the CA at %s (root: %s)\n", caAddr, filepath.Join(u.cfg.CADir, ca.RootFile))
	} else {
		fmt.Fprintln(u.out, "  no CA (--mtls=false): sidecars have no identities, traffic is plaintext")
	}
	for _, w := range ws {
		if w.IngressPort != 0 && ingress != "" {
			fmt.Fprintf(u.out, "  send traffic to  http://%s%s\n", ingress, w.IngressPath)
		}
	}
	if mon != "" {
		fmt.Fprintf(u.out, "  dashboard        http://%s/dashboard/\n", mon)
		fmt.Fprintf(u.out, "  control plane    http://%s/metrics\n", mon)
	}
	for _, w := range ws {
		local, where := w.Address.String(), ""
		if w.Netns != "" {
			local, where = "127.0.0.1", " in its namespace"
		}
		fmt.Fprintf(u.out, "  %-24s %s:%s (sidecar, app on %s)  outbound proxy %s:%d  admin %s:%d%s\n",
			w.ID(), w.Address, joinPorts(w.Ports), appAddrs(w), local, u.cfg.Ports.ExplicitProxy, local, u.cfg.Ports.Admin, where)
	}
	if u.cfg.Netns {
		fmt.Fprintf(u.out, "  each workload in its own network namespace on bridge %s (%s), traffic captured by iptables; run a command in one with: ip netns exec <namespace> ...\n", u.cfg.NetnsBridge, u.cfg.NetnsSubnet.Masked())
		for _, w := range ws {
			fmt.Fprintf(u.out, "  %-24s namespace %s (WorkloadEntry address %s → %s)\n", w.ID(), w.Netns, w.LocalAddress, w.Address)
		}
	}
	fmt.Fprintf(u.out, "  edit %s to change the routing; Ctrl-C stops everything\n", u.cfg.Dir)
}

func joinPorts(ps []uint32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.FormatUint(uint64(p), 10)
	}
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// running is what one Run has started, for stopping it in order.
type running struct {
	up        *Up
	cpCancel  context.CancelFunc
	cpDone    chan error
	door      *frontDoor
	sidecars  []*process
	workloads []*process
	net       *network // with --netns
	alloc     *addrAllocator
	generated *memory.Store // the Sidecars up generates (without --netns)
	// members are the processes of each running workload, by ID; removed
	// are the processes stopped because their WorkloadEntry went.
	members map[string][]*process
	removed map[*process]bool
}

// controlPlane starts the control plane in this process, reading the
// directory and, after it, the Sidecars up generated (sidecar.go).
func (r *running) controlPlane(ctx context.Context, sidecars []config.Config, alloc *addrAllocator) error {
	cfg := r.up.cfg
	const name = "control plane"
	r.up.progress(name, "starting")
	logFile := logPath(cfg.StateDir, "control-plane")
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return &StartError{Component: name, Err: fmt.Errorf("log file: %w", err)}
	}
	generated, err := sidecarStore(ctx, sidecars)
	if err != nil {
		f.Close()
		return &StartError{Component: name, Err: err}
	}
	logger := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dc := discovery.Config{
		ConfigDir:         cfg.Dir,
		Stores:            []store.Store{generated},
		XDSAddress:        cfg.XDSAddress,
		MonitoringAddress: cfg.MonitoringAddress,
		Logger:            logger,
	}
	r.generated = generated
	if alloc != nil {
		// --netns: the directory as the control plane would read it, with
		// the WorkloadEntries at their namespaces' addresses.
		fs, err := file.New(file.Config{Dir: cfg.Dir, Schemas: schema.Istio(), Decode: ingest.Decoder(schema.Istio()),
			Validate: ingest.Validate, Logger: logger.With("source", "file")})
		if err != nil {
			f.Close()
			return &StartError{Component: name, Err: fmt.Errorf("config directory: %w", err)}
		}
		dc.ConfigDir = ""
		dc.Stores = []store.Store{&addressOverlay{Store: fs, mapAddr: alloc.mapAddr}, generated}
	}
	if cfg.DisableMTLS {
		// No identities: clients must not originate mesh mTLS either.
		dc.Mesh = model.DefaultMesh()
		dc.Mesh.EnableAutoMtls = wrapperspb.Bool(false)
	} else {
		dc.SecureGRPCAddress = cfg.CAAddress
		dc.CADir = cfg.CADir
		dc.TrustDomain = cfg.TrustDomain
	}
	srv, err := discovery.New(dc)
	if err != nil {
		f.Close()
		return &StartError{Component: name, Err: err, Log: logFile, Tail: tail(logFile, 20)}
	}
	cpCtx, cancel := context.WithCancel(context.Background())
	r.cpCancel = cancel
	r.cpDone = make(chan error, 1)
	go func() {
		err := srv.Run(cpCtx)
		f.Close()
		r.cpDone <- err
	}()
	t := time.NewTimer(cfg.ReadyTimeout)
	defer t.Stop()
	select {
	case <-srv.Ready():
	case err := <-r.cpDone:
		r.cpDone <- err // for stop
		return &StartError{Component: name, Err: err, Log: logFile, Tail: tail(logFile, 20),
			Fix: "if an address is in use, stop what uses it or pass --xds-address / --monitoring-address / --ca-address; if the CA directory is the problem, see " + cfg.CADir + " or pass --ca-dir"}
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return &StartError{Component: name, Err: fmt.Errorf("not ready after %v", cfg.ReadyTimeout), Log: logFile, Tail: tail(logFile, 20)}
	}
	r.up.mu.Lock()
	r.up.xds = srv.XDSAddr().String()
	if a := srv.MonitoringAddr(); a != nil {
		r.up.monitoring = a.String()
	}
	if a := srv.SecureGRPCAddr(); a != nil {
		r.up.ca = a.String()
	}
	r.up.mu.Unlock()
	state := "ready (xDS " + srv.XDSAddr().String()
	if a := srv.SecureGRPCAddr(); a != nil {
		state += ", CA " + a.String() + ", root in " + cfg.CADir
	}
	r.up.progress(name, state+")")
	return nil
}

// workload starts a workload's sidecar, waits for it to be ready, then
// starts the workload itself if the directory says how.
func (r *running) workload(ctx context.Context, w Workload) error {
	cfg := r.up.cfg
	name := "sidecar " + w.ID()
	r.up.progress(name, "starting")
	args, err := r.up.sidecarArgs(w)
	if err != nil {
		return &StartError{Component: name, Err: err, Fix: "check that the CA directory " + cfg.CADir + " is writable, or pass --ca-dir"}
	}
	var gid uint32
	if w.Netns != "" {
		args, gid = inNetns(w.Netns, args), ProxyGID
	}
	p, err := r.up.start(name, args, gid)
	if err != nil {
		return &StartError{Component: name, Err: err, Fix: "check that " + cfg.Executable + " is a trellis binary"}
	}
	r.sidecars = append(r.sidecars, p)
	r.members[w.ID()] = append(r.members[w.ID()], p)
	health := "http://" + netip.AddrPortFrom(w.Address, cfg.Ports.Health).String() + "/healthz/ready"
	if err := r.up.waitReady(ctx, p, func() error { return httpReady(health) }); err != nil {
		fix := "see the log; the sidecar reads its configuration from the control plane at " + r.up.XDSAddr()
		logTail := tail(p.log, 50)
		switch {
		case strings.Contains(logTail, "NACK"):
			fix = "the sidecar rejected its configuration (NACK in the log): the message names the resource and field"
			if cfg.DisableMTLS {
				fix += "; with --mtls=false sidecars have no certificates: if the NACK is about TLS, add a PeerAuthentication with spec.mtls.mode DISABLE to the directory, or run with mTLS"
			}
		case !cfg.DisableMTLS && strings.Contains(strings.ToLower(logTail), "certificate"):
			fix = "the sidecar did not get its workload certificate from the CA at " + r.up.CAAddr() + " (see the log); its bootstrap token is under " + filepath.Join(cfg.CADir, "bootstrap")
		}
		return r.up.startError(p, err, fix)
	}
	r.up.progress(name, "ready")
	if w.Command == nil {
		r.up.progress("workload "+w.ID(), fmt.Sprintf("not started (no %s annotation): run it on %s, sending its calls to %s:%d", AnnotationRun, appAddrs(w), w.Address, cfg.Ports.ExplicitProxy))
		return nil
	}
	name = "workload " + w.ID()
	argv := append([]string(nil), w.Command...)
	if argv[0] == "trellis" {
		argv[0] = cfg.Executable
	}
	r.up.progress(name, "starting: "+strings.Join(w.Command, " "))
	if w.Netns != "" {
		argv = inNetns(w.Netns, argv)
	}
	if p, err = r.up.start(name, argv, 0); err != nil {
		return &StartError{Component: name, Err: err, Fix: fmt.Sprintf("check the %s annotation of WorkloadEntry %s in %s", AnnotationRun, w.ID(), w.Source.File)}
	}
	r.workloads = append(r.workloads, p)
	r.members[w.ID()] = append(r.members[w.ID()], p)
	if err := r.up.waitReady(ctx, p, func() error { return tcpReady(w) }); err != nil {
		return r.up.startError(p, err, fmt.Sprintf("the workload must listen on %s (its sidecar owns %s:%s; use {{.AppAddress}} or {{.App PORT}} in the %s annotation of WorkloadEntry %s in %s)", appAddrs(w), w.Address, joinPorts(w.Ports), AnnotationRun, w.ID(), w.Source.File))
	}
	r.up.progress(name, "ready")
	return nil
}

// frontDoor opens the ingress listener.
func (r *running) frontDoor(ws []Workload) error {
	cfg := r.up.cfg
	if cfg.IngressAddress == "-" {
		return nil
	}
	for _, w := range ws {
		if w.IngressPort == 0 {
			continue
		}
		target := netip.AddrPortFrom(w.Address, uint16(w.IngressPort)).String()
		ln, err := net.Listen("tcp", cfg.IngressAddress)
		if err != nil {
			return &StartError{Component: "front door", Err: err, Fix: "stop what uses " + cfg.IngressAddress + " or pass --ingress"}
		}
		r.door = newFrontDoor(ln, target)
		go r.door.serve()
		r.up.mu.Lock()
		r.up.ingress = ln.Addr().String()
		r.up.mu.Unlock()
		r.up.progress("front door", fmt.Sprintf("ready: %s → %s (%s)", ln.Addr(), target, w.ID()))
	}
	return nil
}

// stop stops what was started: front door, workloads, sidecars (they
// drain), control plane.
func (r *running) stop() {
	if r.door != nil {
		r.door.close()
	}
	grace := 5 * time.Second
	r.up.stopAll(r.workloads, grace)
	r.up.stopAll(r.sidecars, r.up.cfg.DrainDuration+grace)
	if r.cpCancel != nil {
		r.cpCancel()
		if err := <-r.cpDone; err != nil {
			fmt.Fprintf(r.up.out, "control plane stopped with: %v\n", err)
		}
	}
	if r.net != nil {
		// The processes are gone: the namespaces (with their iptables
		// rules), veths and bridge can go.
		if err := r.net.remove(); err != nil {
			fmt.Fprintf(r.up.out, "warning: %v\n", err)
		}
	}
}

// stopAll stops the processes in parallel.
func (u *Up) stopAll(ps []*process, grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			if err := p.stop(grace); err != nil {
				fmt.Fprintf(u.out, "%s exited with %v (log: %s)\n", p.name, err, p.log)
			}
		})
	}
	wg.Wait()
}

// start starts a child and records it.
func (u *Up) start(name string, argv []string, gid uint32) (*process, error) {
	p, err := startProcess(name, logPath(u.cfg.StateDir, name), argv, gid)
	if err != nil {
		return nil, err
	}
	u.mu.Lock()
	u.procs = append(u.procs, p)
	u.mu.Unlock()
	return p, nil
}

// sidecarArgs is the sidecar's command line. With mTLS it mints (or
// reuses) the bootstrap token of the workload's service account.
func (u *Up) sidecarArgs(w Workload) ([]string, error) {
	u.mu.Lock()
	cfg := u.cfg
	u.mu.Unlock()
	at := func(p uint16) string { return netip.AddrPortFrom(w.Address, p).String() }
	pl := w.proxyLabels()
	keys := make([]string, 0, len(pl))
	for k := range pl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	labels := make([]string, len(keys))
	for i, k := range keys {
		labels[i] = k + "=" + pl[k]
	}
	args := []string{cfg.Executable, "proxy", "sidecar",
		"--xds-address", u.XDSAddr(),
		"--ip", w.Address.String(),
		"--pod-name", w.Name, "--namespace", w.Namespace, "--workload-name", w.Name,
		"--health-address", at(cfg.Ports.Health),
		"--metrics-address", at(cfg.Ports.Metrics),
		"--drain-duration", cfg.DrainDuration.String(),
	}
	if w.Netns == "" {
		args = append(args, "--bind-address", w.Address.String(),
			"--admin-address", at(cfg.Ports.Admin),
			"--explicit-proxy", at(cfg.Ports.ExplicitProxy))
	} else {
		// In its namespace, capture brings the traffic; the explicit proxy
		// stays on the namespace's loopback for run templates that name
		// {{.Proxy}} (applications that dial service names without DNS).
		lo := netip.MustParseAddr("127.0.0.1")
		args = append(args,
			"--admin-address", netip.AddrPortFrom(lo, cfg.Ports.Admin).String(),
			"--explicit-proxy", netip.AddrPortFrom(lo, cfg.Ports.ExplicitProxy).String())
		if !cfg.DisableMTLS {
			// The CA is on the bridge address, which its serving
			// certificate does not name; it names localhost.
			args = append(args, "--ca-server-name", "localhost")
		}
	}
	if len(labels) > 0 {
		args = append(args, "--labels", strings.Join(labels, ","))
	}
	sa := w.ServiceAccount
	if !cfg.DisableMTLS {
		if sa == "" {
			// Kubernetes' pods without one run as "default".
			sa = defaultServiceAccount
		}
		_, tokenPath, err := bootstrap.Mint(filepath.Join(cfg.CADir, "bootstrap"), w.Namespace, sa)
		if err != nil {
			return nil, fmt.Errorf("bootstrap token of %s/%s: %w", w.Namespace, sa, err)
		}
		args = append(args,
			"--ca-address", u.CAAddr(),
			"--ca-root-cert", filepath.Join(cfg.CADir, ca.RootFile),
			"--bootstrap-token", tokenPath,
			"--trust-domain", cfg.TrustDomain)
	}
	if sa != "" && !cfg.DisableMTLS {
		// Without the CA a sidecar has no certificate: announcing a
		// service account would give it mTLS chains it cannot serve.
		args = append(args, "--service-account", sa)
	}
	return args, nil
}

// defaultServiceAccount is the identity of a WorkloadEntry without
// spec.serviceAccount.
const defaultServiceAccount = "default"

// waitReady polls check until it succeeds, the process exits, ctx ends or
// the ready timeout passes.
func (u *Up) waitReady(ctx context.Context, p *process, check func() error) error {
	deadline := time.NewTimer(u.cfg.ReadyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not ready after %v: %w", u.cfg.ReadyTimeout, err)
		case <-tick.C:
		}
	}
}

// startError describes a child that failed to become ready.
func (u *Up) startError(p *process, err error, fix string) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	// Stop it first so that its last words are in the log.
	_ = p.stop(time.Second)
	return &StartError{Component: p.name, Err: err, Log: p.log, Tail: tail(p.log, 20), Fix: fix}
}

func (u *Up) progress(component, state string) {
	fmt.Fprintf(u.out, "  %-36s %s\n", component, state)
}

// httpReady is nil once url answers 200.
func httpReady(url string) error {
	c := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return nil
}

// tcpReady is nil once the application accepts connections on each of
// its private ports (with --netns, on the namespace's loopback, which the
// capture rules leave alone).
func tcpReady(w Workload) error {
	for _, p := range sortedPorts(w.AppPorts) {
		addr := net.JoinHostPort(AppHost, strconv.Itoa(int(w.AppPorts[p])))
		if w.Netns != "" {
			if err := dialIn(w.Netns, addr, time.Second); err != nil {
				return fmt.Errorf("in netns %s: %w", w.Netns, err)
			}
			continue
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// appAddrs lists where the application listens: "127.0.0.1:41234" or,
// with several ports, "9080→127.0.0.1:41234 9443→127.0.0.1:41235".
func appAddrs(w Workload) string {
	if len(w.Ports) == 0 {
		return "-"
	}
	if len(w.Ports) == 1 {
		return net.JoinHostPort(w.host(), strconv.Itoa(int(w.AppPorts[w.Ports[0]])))
	}
	parts := make([]string, len(w.Ports))
	for i, p := range w.Ports {
		parts[i] = strconv.Itoa(int(p)) + "→" + net.JoinHostPort(w.host(), strconv.Itoa(int(w.AppPorts[p])))
	}
	return strings.Join(parts, " ")
}

// host is where the workload's application listens.
func (w Workload) host() string {
	if w.appHost != "" {
		return w.appHost
	}
	return AppHost
}
