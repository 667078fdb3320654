package up

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/up"
)

// DefaultDir is the directory used without DIR: the Bookinfo example,
// relative to the repository root.
const DefaultDir = "examples/bookinfo/config"

// Deps are what the command takes from cmd.
type Deps struct {
	// Executable returns the trellis binary (os.Executable).
	Executable func() (string, error)
	// Geteuid is os.Geteuid (for --netns).
	Geteuid func() int
}

// NewCommand returns `trellis up`.
func NewCommand(d Deps) *cobra.Command {
	var (
		cfg    up.Config
		netns  bool
		mtls   bool
		subnet string
	)
	cmd := &cobra.Command{
		Use:   "up [DIR]",
		Short: "Run a whole mesh on this machine from a directory of Istio YAML",
		Long: `Read a directory of Istio YAML, start the control plane, one sidecar per
WorkloadEntry and the workloads the directory says how to run, and keep
running until Ctrl-C, which stops the workloads, then the sidecars (they
drain), then the control plane.

Without DIR it runs ` + DefaultDir + ` (the Bookinfo sample; run it
from the repository root): open http://127.0.0.1:9080/productpage.

Each WorkloadEntry needs its own loopback address (spec.address 127.0.0.x).
Its sidecar listens there (admin :15000, readiness :15021, metrics :15020,
outbound proxy :15080, and an inbound listener on each service port, from
a Sidecar ingress up generates, where mutual TLS ends); the application
listens on 127.0.0.1 and a private port, and sends its calls to the
outbound proxy explicitly. A WorkloadEntry says how to run its workload
with annotations:

  trellis.dev/run: "trellis bookinfo reviews --version v2 --listen {{.AppAddress}} --outbound {{.Proxy}}"
  trellis.dev/ingress: "9080"               the front door (--ingress) forwards here
  trellis.dev/ingress-path: /productpage    printed with the front door's URL

The run annotation is a Go template ({{.Name}}, {{.Namespace}},
{{.Address}}, {{.AppAddress}}, {{.App PORT}}, {{.Proxy}}, {{.Labels.version}}); a first word "trellis" is
this binary. The control plane watches DIR: routing and security changes
apply live (trellis apply -f / delete -f write DIR for you).

With --mtls (the default) the control plane runs its CA on --ca-address,
keeping its root in --ca-dir, and every sidecar gets a workload certificate
for its service account with a bootstrap token minted in <ca-dir>/bootstrap;
a sidecar is ready once it has it. WorkloadEntries added or removed while running start or
stop their sidecar and workload (a changed one keeps running as it is:
restart trellis up).

--netns (root, Linux) puts each workload in its own network namespace on a
bridge (--netns-bridge, --netns-subnet) with transparent capture (trellis
proxy iptables): its sidecar runs there as group 1337, the WorkloadEntry's
127.0.0.x address is mapped to the namespace's for the control plane (your
files are not changed), the application listens on 0.0.0.0 and the real
service ports ({{.AppAddress}}), and {{.Proxy}} is 127.0.0.1:15080 in the
namespace. Ctrl-C removes the namespaces, their rules and the bridge.

Each component's output goes to a log file in --state-dir (default: a new
temporary directory, printed at start).`,
		Example: `  make demo                        # = go run ./cmd/trellis up
  trellis up examples/bookinfo/config
  trellis up --ingress 127.0.0.1:8080 ./my-mesh`,
		Args:          cobra.MaximumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if netns {
				if d.Geteuid() != 0 {
					return errors.New("--netns needs root (network namespaces and iptables)")
				}
				cfg.Netns = true
				p, err := netip.ParsePrefix(subnet)
				if err != nil {
					return fmt.Errorf("--netns-subnet %q: %w", subnet, err)
				}
				cfg.NetnsSubnet = p
			}
			cfg.Dir = DefaultDir
			if len(args) == 1 {
				cfg.Dir = args[0]
			} else if _, err := os.Stat(cfg.Dir); err != nil {
				return fmt.Errorf("no DIR given and %s not found: run trellis up from the repository root, or pass a directory of Istio YAML", DefaultDir)
			}
			if abs, err := filepath.Abs(cfg.Dir); err == nil {
				cfg.Dir = abs
			}
			exe, err := d.Executable()
			if err != nil {
				return fmt.Errorf("locating the trellis binary: %w", err)
			}
			cfg.Executable = exe
			cfg.DisableMTLS = !mtls
			if !mtls {
				cfg.CADir = ""
			} else if abs, err := filepath.Abs(cfg.CADir); err == nil {
				cfg.CADir = abs
			}
			cfg.Out = cmd.OutOrStdout()
			u, err := up.New(cfg)
			if err != nil {
				return err
			}
			return u.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.IngressAddress, "ingress", up.DefaultIngressAddress, `front door address, forwarding to the workload annotated trellis.dev/ingress ("-" disables)`)
	f.StringVar(&cfg.XDSAddress, "xds-address", up.DefaultXDSAddress, "control plane xDS address")
	f.StringVar(&cfg.MonitoringAddress, "monitoring-address", up.DefaultMonitoringAddress, `control plane monitoring address, /metrics ("-" disables)`)
	f.BoolVar(&mtls, "mtls", true, "run the CA and give every sidecar a workload certificate (false: plaintext, no identities, as before certificates existed)")
	f.StringVar(&cfg.CAAddress, "ca-address", up.DefaultCAAddress, "the CA's address (Istio's secure gRPC port 15012)")
	f.StringVar(&cfg.CADir, "ca-dir", filepath.Join(".trellis", "ca"), "CA directory: the root is generated there on first start and kept; bootstrap tokens in <ca-dir>/bootstrap")
	f.StringVar(&cfg.TrustDomain, "trust-domain", up.DefaultTrustDomain, "trust domain of the workloads' SPIFFE identities")
	f.StringVar(&cfg.RunFile, "run-file", up.DefaultRunFile, `where the running mesh is recorded for trellis apply/delete/describe ("" disables)`)
	f.StringVar(&cfg.StateDir, "state-dir", "", "directory for the components' log files (default: a new temporary directory)")
	f.DurationVar(&cfg.DrainDuration, "drain-duration", up.DefaultDrainDuration, "how long sidecars drain on Ctrl-C")
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", up.DefaultReadyTimeout, "how long to wait for each component to become ready")
	f.BoolVar(&netns, "netns", false, "root only: each workload in its own network namespace with transparent capture")
	f.StringVar(&cfg.NetnsBridge, "netns-bridge", up.DefaultNetnsBridge, "with --netns, the bridge device (also the prefix of the namespaces' names)")
	f.StringVar(&subnet, "netns-subnet", up.DefaultNetnsSubnet.String(), "with --netns, the bridge's IPv4 subnet (bridge on its first address)")
	return cmd
}
