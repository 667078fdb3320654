package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/trellismesh/trellis/internal/dataplane/gctune"
	"github.com/trellismesh/trellis/internal/dataplane/identity"
	"github.com/trellismesh/trellis/internal/dataplane/listener"
	"github.com/trellismesh/trellis/internal/dataplane/role/sidecar"
	"github.com/trellismesh/trellis/internal/dataplane/xdsclient"
)

// sidecarOptions are the flags of `trellis proxy sidecar`.
type sidecarOptions struct {
	xdsAddress     string
	ip             string
	podName        string
	namespace      string
	labels         string
	serviceAccount string
	workloadName   string
	interception   string
	domain         string
	adminAddress   string
	healthAddress  string
	metricsAddress string
	bindAddress    string
	sotw           bool
	drain          time.Duration
	exitOnZero     bool
	minDrain       string // a duration
	maxConns       int
	explicitProxy  string
	appMetricsURL  string
	caAddress      string
	caRootCert     string
	bootstrapToken string
	trustDomain    string
	caServerName   string
	xdsTLS         string
	xdsServerName  string
	certTTL        time.Duration
	rootCheck      time.Duration
	gcHeadroom     string // MiB
	gcMinGoal      string // MiB
	keepPages      bool
	// badEnv are the boolean environment variables set to something else
	// (envBool); config refuses them.
	badEnv []error
}

func newSidecarCommand(d deps) *cobra.Command {
	var o sidecarOptions
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Run the sidecar proxy of one workload, configured by the control plane over xDS",
		Long: `Run the sidecar proxy: it connects to the control plane (--xds-address),
identifies its workload the way Istio's agent does (node ID
sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>, with the workload's
labels and service account in the node metadata), and serves the listeners,
routes and clusters it is given: outbound capture on 15001 and inbound on
15006 (use 'trellis proxy iptables' to redirect traffic to them), admin on
127.0.0.1:15000 and readiness on :15021/healthz/ready.

With --ca-address the proxy obtains its workload certificate from the mesh
CA; xDS then runs over mutual TLS with it when --xds-address is the control
plane's secure port (15012, or the CA's address; --xds-tls on/off forces the
choice), the control plane verified for --xds-server-name.

Values default to Istio's environment variables (INSTANCE_IP, POD_NAME,
POD_NAMESPACE, SERVICE_ACCOUNT) when set.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.config(d)
			if err != nil {
				return err
			}
			s, err := sidecar.New(cfg)
			if err != nil {
				return err
			}
			if gc, ok := o.gcConfig(); ok { // checked by config
				defer gctune.Start(gc, d.getenv).Stop()
			}
			if d.signals != nil {
				// The first SIGTERM/SIGINT cancels the context: Run drains
				// for --drain-duration. The next one stops at once.
				sigs, stop := d.signals()
				defer stop()
				done := make(chan struct{})
				defer close(done)
				go func() {
					seen := 0
					for {
						select {
						case <-sigs:
							if seen++; seen >= 2 {
								s.Stop()
							}
						case <-done:
							return
						}
					}
				}()
			}
			return s.Run(cmd.Context())
		},
	}
	o.bindFlags(cmd.Flags(), d)
	return cmd
}

// bindFlags defines the sidecar's flags on f, bound to o, their defaults
// from d's environment.
func (o *sidecarOptions) bindFlags(f *pflag.FlagSet, d deps) {
	f.StringVar(&o.xdsAddress, "xds-address", envDefault(d.getenv, "XDS_ADDRESS", "127.0.0.1:15010"), "control plane xDS address (env XDS_ADDRESS)")
	f.StringVar(&o.ip, "ip", d.getenv("INSTANCE_IP"), "the workload's IP address (env INSTANCE_IP)")
	f.StringVar(&o.podName, "pod-name", d.getenv("POD_NAME"), "the workload's pod (or instance) name (env POD_NAME)")
	f.StringVar(&o.namespace, "namespace", envDefault(d.getenv, "POD_NAMESPACE", "default"), "the workload's namespace (env POD_NAMESPACE)")
	f.StringVar(&o.labels, "labels", "", "the workload's labels, k=v,k2=v2")
	f.StringVar(&o.serviceAccount, "service-account", d.getenv("SERVICE_ACCOUNT"), "the workload's service account (env SERVICE_ACCOUNT)")
	f.StringVar(&o.workloadName, "workload-name", "", "the workload's name (WorkloadEntry or Deployment)")
	f.StringVar(&o.interception, "interception-mode", envDefault(d.getenv, "ISTIO_META_INTERCEPTION_MODE", "REDIRECT"), "how traffic reaches the proxy, sent as node metadata INTERCEPTION_MODE: REDIRECT (iptables nat), TPROXY (trellis proxy iptables -m TPROXY; the capture listeners are made transparent, which needs CAP_NET_ADMIN) or NONE (no capture) (env ISTIO_META_INTERCEPTION_MODE)")
	f.StringVar(&o.domain, "domain", "cluster.local", "cluster DNS domain")
	f.StringVar(&o.adminAddress, "admin-address", "127.0.0.1:15000", `admin endpoint address ("-" disables)`)
	f.StringVar(&o.healthAddress, "health-address", ":15021", `readiness endpoint address ("-" disables)`)
	f.StringVar(&o.metricsAddress, "metrics-address", ":15020", `Prometheus metrics address, /stats/prometheus ("-" disables)`)
	f.StringVar(&o.bindAddress, "bind-address", "", "bind wildcard listeners (15001, 15006) to this address instead (local mode: one loopback address per workload)")
	f.BoolVar(&o.sotw, "sotw", false, "use state-of-the-world xDS instead of delta")
	f.DurationVar(&o.drain, "drain-duration", 5*time.Second, "on SIGTERM, how long inbound listeners keep serving (clients asked to go away) before the proxy exits; a second signal exits at once. Also the drain time of replaced listeners (Istio's terminationDrainDuration)")
	f.BoolVar(&o.exitOnZero, "exit-on-zero-active-connections", o.envBool(d.getenv, "EXIT_ON_ZERO_ACTIVE_CONNECTIONS"), "on SIGTERM, drain for --minimum-drain-duration, then exit as soon as no connection to the proxy's listeners is left (checked every second) instead of after --drain-duration, which then does not bound the wait; a second signal exits at once (Istio's EXIT_ON_ZERO_ACTIVE_CONNECTIONS; env EXIT_ON_ZERO_ACTIVE_CONNECTIONS)")
	f.StringVar(&o.minDrain, "minimum-drain-duration", envDefault(d.getenv, "MINIMUM_DRAIN_DURATION", "5s"), "with --exit-on-zero-active-connections, how long the proxy drains before it checks for active connections (Istio's MINIMUM_DRAIN_DURATION; env MINIMUM_DRAIN_DURATION)")
	f.IntVar(&o.maxConns, "max-connections", listener.DefaultMaxConnections, "open connections accepted per listener socket (inbound 15006, outbound 15001, ...); beyond it new connections are closed at once and counted in envoy_listener_downstream_cx_overflow, existing ones are served; negative: no limit")
	f.StringVar(&o.explicitProxy, "explicit-proxy", "", "serve an HTTP forward proxy (absolute-form requests, Host routing, CONNECT) on this ip:port: the outbound routes without traffic capture, for local mode without root (see docs/local-mode.md)")
	f.StringVar(&o.appMetricsURL, "app-metrics-url", "", "the application's Prometheus endpoint, merged into /stats/prometheus on the metrics port (default from ISTIO_PROMETHEUS_ANNOTATIONS)")
	f.StringVar(&o.caAddress, "ca-address", d.getenv("CA_ADDR"), "the mesh CA (Istio's CreateCertificate over TLS, e.g. 127.0.0.1:15012 in local mode); empty: no workload identity, no mesh TLS (env CA_ADDR)")
	f.StringVar(&o.caRootCert, "ca-root-cert", "./var/run/secrets/istio/root-cert.pem", "PEM roots that authenticate the CA and seed the mesh trust bundle (re-read when changed)")
	f.StringVar(&o.bootstrapToken, "bootstrap-token", "", "file holding the local-mode bootstrap token (trellis-bootstrap/v1/...) that proves the identity for the first certificate")
	f.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "the mesh trust domain of the workload's SPIFFE identity")
	f.StringVar(&o.caServerName, "ca-server-name", "", "the name the CA's serving certificate must carry (default: the host of --ca-address; the CA's certificate names istiod.<root-ns>.svc, localhost and 127.0.0.1)")
	f.DurationVar(&o.certTTL, "cert-ttl", 0, "the workload certificate lifetime to request from the CA (0: the CA's default, 24h; the CA refuses more than its maximum, 90 days); the proxy renews at about half of it")
	f.DurationVar(&o.rootCheck, "root-check-interval", identity.DefaultRootCheckInterval, "how often --ca-root-cert is checked for changes (a root rotation step rewrites it)")
	f.StringVar(&o.xdsTLS, "xds-tls", "auto", `xDS over mutual TLS with the workload certificate: "on", "off" (plaintext), or "auto": on when --ca-address is set and --xds-address is the secure port (port 15012, or the same address as --ca-address)`)
	f.StringVar(&o.xdsServerName, "xds-server-name", "", "with xDS over TLS, the name the control plane's certificate must carry (default: --ca-server-name when --xds-address is on the CA's host, else the host of --xds-address)")
	f.StringVar(&o.gcHeadroom, "gc-headroom-mib", envDefault(d.getenv, "TRELLIS_GC_HEADROOM_MIB", strconv.Itoa(gctune.DefaultHeadroom>>20)), "garbage the heap may gather above the live heap between collections, MiB: the GC goal is live+headroom instead of Go's 2×live (less memory with a large configuration, fewer collections with a small one); 0 leaves Go's default; an explicit GOGC environment variable wins (env TRELLIS_GC_HEADROOM_MIB)")
	f.StringVar(&o.gcMinGoal, "gc-min-goal-mib", envDefault(d.getenv, "TRELLIS_GC_MIN_GOAL_MIB", strconv.Itoa(gctune.DefaultMinGoal>>20)), "lowest GC heap goal, MiB: with a small configuration the goal is this rather than live+headroom, the memory a large configuration (1,000 services) needs anyway spent on fewer collections (default: just under that configuration's goal); 0: no floor (env TRELLIS_GC_MIN_GOAL_MIB)")
	f.BoolVar(&o.keepPages, "keep-startup-pages", o.envBool(d.getenv, "TRELLIS_KEEP_STARTUP_PAGES"), "keep the executable's pages mapped after start-up; by default, once the first configuration has settled, the proxy drops its mappings of them (they stay in the page cache; those in use come back at once), so that its resident memory follows its working set (env TRELLIS_KEEP_STARTUP_PAGES)")
}

// gcConfig is the GC tuner's configuration from --gc-headroom-mib and
// --gc-min-goal-mib; ok is false when the headroom is 0 (Go's default
// pace, no tuner). The options are checked by config (checkGC).
func (o sidecarOptions) gcConfig() (cfg gctune.Config, ok bool) {
	headroom, err1 := mib(o.gcHeadroom, gctune.DefaultHeadroom>>20)
	minGoal, err2 := mib(o.gcMinGoal, gctune.DefaultMinGoal>>20)
	if err1 != nil || err2 != nil || headroom == 0 {
		return gctune.Config{}, false
	}
	return gctune.Config{Headroom: uint64(headroom) << 20, MinGoal: uint64(minGoal) << 20}, true
}

// checkGC validates --gc-headroom-mib and --gc-min-goal-mib.
func (o sidecarOptions) checkGC() error {
	if _, err := mib(o.gcHeadroom, 0); err != nil {
		return fmt.Errorf("--gc-headroom-mib (env TRELLIS_GC_HEADROOM_MIB) %q: want a whole number of MiB ≥ 0 (0 leaves Go's default GC pace)", o.gcHeadroom)
	}
	if _, err := mib(o.gcMinGoal, 0); err != nil {
		return fmt.Errorf("--gc-min-goal-mib (env TRELLIS_GC_MIN_GOAL_MIB) %q: want a whole number of MiB ≥ 0 (0: no floor)", o.gcMinGoal)
	}
	return nil
}

// mib parses a whole number of MiB ≥ 0; "" is def.
func mib(v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("not a whole number ≥ 0")
	}
	return n, nil
}

func envDefault(getenv env, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// envBool is an environment variable as a flag's boolean default: true
// for "1", "t", "true" and the like (strconv.ParseBool), false when unset.
// A value that is not a boolean is false and kept in o.badEnv, so that
// config refuses it rather than a typo silently turning the option off.
func (o *sidecarOptions) envBool(getenv env, key string) bool {
	v := getenv(key)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		o.badEnv = append(o.badEnv, fmt.Errorf("environment variable %s=%q: want true or false", key, v))
	}
	return b
}

// config validates the options into the sidecar's configuration.
func (o sidecarOptions) config(d deps) (sidecar.Config, error) {
	if o.ip == "" {
		return sidecar.Config{}, fmt.Errorf("--ip is required (or set INSTANCE_IP)")
	}
	if err := o.checkGC(); err != nil {
		return sidecar.Config{}, err
	}
	if err := errors.Join(o.badEnv...); err != nil {
		return sidecar.Config{}, err
	}
	minDrain, err := o.minimumDrain()
	if err != nil {
		return sidecar.Config{}, err
	}
	pod := o.podName
	if pod == "" {
		h, err := os.Hostname()
		if err != nil {
			return sidecar.Config{}, fmt.Errorf("--pod-name is required (or set POD_NAME): %w", err)
		}
		pod = h
	}
	labels, err := sidecar.ParseLabels(o.labels)
	if err != nil {
		return sidecar.Config{}, fmt.Errorf("--labels: %w", err)
	}
	node, err := sidecar.NodeConfig{
		IP: o.ip, PodName: pod, Namespace: o.namespace, DomainSuffix: o.domain,
		Labels: labels, ServiceAccount: o.serviceAccount, WorkloadName: o.workloadName,
		MetricsAddress:   o.metricsAddress, // METRICS_ADDRESS, for the control plane's dashboard
		InterceptionMode: strings.ToUpper(strings.TrimSpace(o.interception)),
	}.Node()
	if err != nil {
		return sidecar.Config{}, fmt.Errorf("--ip/--pod-name/--namespace/--interception-mode: %w", err)
	}
	protocol := xdsclient.Delta
	if o.sotw {
		protocol = xdsclient.SotW
	}
	appURL := o.appMetricsURL
	if appURL == "" {
		if v := d.getenv("ISTIO_PROMETHEUS_ANNOTATIONS"); v != "" {
			var ann map[string]string
			if err := json.Unmarshal([]byte(v), &ann); err != nil {
				return sidecar.Config{}, fmt.Errorf("env ISTIO_PROMETHEUS_ANNOTATIONS: want a JSON object of strings: %w", err)
			}
			host := "localhost" // the application's side of the pod
			if o.bindAddress != "" {
				host = o.bindAddress // local mode: the workload's own loopback address
			}
			if appURL, err = sidecar.AppMetricsURL(ann, host); err != nil {
				return sidecar.Config{}, fmt.Errorf("env ISTIO_PROMETHEUS_ANNOTATIONS: %w", err)
			}
		}
	}
	id, err := o.identity()
	if err != nil {
		return sidecar.Config{}, err
	}
	xdsName, err := o.xdsTLSServerName(id)
	if err != nil {
		return sidecar.Config{}, err
	}
	return sidecar.Config{
		Identity:       id,
		XDSServerName:  xdsName,
		XDSAddress:     o.xdsAddress,
		Node:           node,
		Protocol:       protocol,
		AdminAddress:   o.adminAddress,
		HealthAddress:  o.healthAddress,
		MetricsAddress: o.metricsAddress,
		BindAddress:    o.bindAddress,
		DrainDuration:  o.drain,
		MaxConnections: o.maxConns,

		ExitOnZeroActiveConnections: o.exitOnZero,
		MinimumDrainDuration:        minDrain,

		KeepStartupPages: o.keepPages,
		Logger:           d.logger,

		ExplicitProxyAddress: o.explicitProxy,
		AppMetricsURL:        appURL,
		AppProbers:           d.getenv("ISTIO_KUBE_APP_PROBERS"), // the injector's rewritten probes
	}, nil
}

// minimumDrain parses --minimum-drain-duration ("": Istio's default, 5s).
func (o sidecarOptions) minimumDrain() (time.Duration, error) {
	if o.minDrain == "" {
		return 5 * time.Second, nil
	}
	d, err := time.ParseDuration(o.minDrain)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--minimum-drain-duration (env MINIMUM_DRAIN_DURATION) %q: want a positive duration such as 5s", o.minDrain)
	}
	return d, nil
}

// identity validates the CA flags (none when --ca-address is empty).
func (o sidecarOptions) identity() (identity.Config, error) {
	if o.caAddress == "" {
		return identity.Config{}, nil
	}
	switch {
	case o.serviceAccount == "":
		return identity.Config{}, fmt.Errorf("--ca-address needs --service-account (or SERVICE_ACCOUNT): it names the workload's identity")
	case o.bootstrapToken == "":
		return identity.Config{}, fmt.Errorf("--ca-address needs --bootstrap-token: the file that proves the identity for the first certificate")
	case o.caRootCert == "":
		return identity.Config{}, fmt.Errorf("--ca-address needs --ca-root-cert: the roots that authenticate the CA")
	}
	if _, err := identity.SPIFFEID(o.trustDomain, o.namespace, o.serviceAccount); err != nil {
		return identity.Config{}, fmt.Errorf("--trust-domain/--namespace/--service-account: %w", err)
	}
	if o.certTTL < 0 {
		return identity.Config{}, fmt.Errorf("--cert-ttl %s: a lifetime must not be negative (0 asks for the CA's default)", o.certTTL)
	}
	if o.rootCheck < 0 {
		return identity.Config{}, fmt.Errorf("--root-check-interval %s: must not be negative (0: the default, %s)", o.rootCheck, identity.DefaultRootCheckInterval)
	}
	return identity.Config{
		CAAddress: o.caAddress, ServerName: o.caServerName, RootCertFile: o.caRootCert, TokenFile: o.bootstrapToken,
		TrustDomain: o.trustDomain, Namespace: o.namespace, ServiceAccount: o.serviceAccount,
		TTL: o.certTTL, RootCheckInterval: o.rootCheck,
	}, nil
}

// secureXDSPort is the control plane's secure gRPC port (Istio's
// discoveryAddress :15012): xDS there is always mutual TLS.
const secureXDSPort = "15012"

// xdsTLSServerName decides whether xDS runs over mutual TLS (--xds-tls)
// and returns the name the control plane's certificate must carry, or ""
// for plaintext.
func (o sidecarOptions) xdsTLSServerName(id identity.Config) (string, error) {
	xhost, xport, err := net.SplitHostPort(o.xdsAddress)
	if err != nil {
		return "", fmt.Errorf("--xds-address %q: %w", o.xdsAddress, err)
	}
	var on bool
	switch o.xdsTLS {
	case "off":
		return "", nil
	case "on":
		if id.CAAddress == "" {
			return "", fmt.Errorf("--xds-tls on needs --ca-address: the workload certificate is the xDS client certificate")
		}
		on = true
	case "auto", "":
		on = id.CAAddress != "" && (xport == secureXDSPort || o.xdsAddress == id.CAAddress)
	default:
		return "", fmt.Errorf("--xds-tls %q: want auto, on or off", o.xdsTLS)
	}
	if !on {
		return "", nil
	}
	if o.xdsServerName != "" {
		return o.xdsServerName, nil
	}
	if chost, _, err := net.SplitHostPort(id.CAAddress); err == nil && chost == xhost && o.caServerName != "" {
		return o.caServerName, nil
	}
	if xhost == "" {
		return "", fmt.Errorf("--xds-address %q has no host: set --xds-server-name", o.xdsAddress)
	}
	return xhost, nil
}
