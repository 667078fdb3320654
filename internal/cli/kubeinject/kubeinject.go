// Package kubeinject implements `trellis kube-inject -f FILE`: the
// sidecar injection of the admission webhook (package kube/inject), run
// offline over a YAML file, as istioctl kube-inject does.
package kubeinject

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/trellismesh/trellis/internal/kube/inject"
)

// DefaultImage is the proxy image injected when --image is not given.
const DefaultImage = "ghcr.io/trellismesh/trellis-proxy:latest"

// options are the command's flags.
type options struct {
	file, output string
	cfg          inject.Config
	pullPolicy   string
	noCA         bool
}

// NewCommand returns `trellis kube-inject`.
func NewCommand() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "kube-inject -f FILE",
		Short: "Add the Trellis sidecar to the Pods and workloads of a YAML file",
		Long: `Inject the sidecar into every Pod, Deployment, StatefulSet, DaemonSet,
ReplicaSet, Job and CronJob of FILE ("-" for standard input) exactly as the
admission webhook would, and write the result (other documents unchanged).
Pod annotations (traffic.sidecar.istio.io/*, proxy.istio.io/config,
sidecar.istio.io/proxyCPU, ...) are honoured; templates labelled
sidecar.istio.io/inject: "false", host-network pods and pods that already
have a sidecar are left as they are. Namespace labels are not consulted.`,
		Example: `  trellis kube-inject -f deployment.yaml | kubectl apply -f -
  trellis kube-inject -f app.yaml --native-sidecar -o app-injected.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.file, "filename", "f", "", `input YAML file ("-" for standard input)`)
	f.StringVarP(&o.output, "output", "o", "", "write the result to this file instead of standard output")
	f.StringVar(&o.cfg.Image, "image", DefaultImage, "image of the proxy and init containers (runs the trellis binary)")
	f.StringVar(&o.pullPolicy, "image-pull-policy", "", "imagePullPolicy of the injected containers (Always, IfNotPresent, Never; default: the cluster's)")
	f.StringVar(&o.cfg.XDSAddress, "xds-address", "istiod.istio-system.svc:15012", "control plane xDS address as pods reach it")
	f.StringVar(&o.cfg.CAAddress, "ca-address", "istiod.istio-system.svc:15012", "mesh CA address as pods reach it")
	f.BoolVar(&o.noCA, "no-ca", false, "inject proxies without a workload identity (no mesh TLS)")
	f.StringVar(&o.cfg.TrustDomain, "trust-domain", "cluster.local", "mesh trust domain")
	f.StringVar(&o.cfg.ClusterDomain, "cluster-domain", "cluster.local", "cluster DNS domain")
	f.StringVar(&o.cfg.Revision, "revision", "default", "control plane revision recorded in the status annotation")
	f.BoolVar(&o.cfg.NativeSidecar, "native-sidecar", false, "inject the proxy as a native sidecar (init container with restartPolicy Always; Kubernetes 1.29+)")
	f.BoolVar(&o.cfg.HoldApplicationUntilProxyStarts, "hold-application-until-proxy-starts", false, "start application containers only once the proxy is ready (mesh default; proxy.istio.io/config overrides it per pod)")
	f.StringVar(&o.cfg.InterceptionMode, "interception-mode", inject.ModeRedirect, "how traffic reaches the proxy: REDIRECT, TPROXY or NONE (mesh default; proxy.istio.io/config and sidecar.istio.io/interceptionMode override it per pod)")
	return cmd
}

func (o options) run(stdin io.Reader, stdout io.Writer) error {
	if o.file == "" {
		return fmt.Errorf("-f is required: the YAML file to inject (\"-\" for standard input)")
	}
	cfg := o.cfg
	if o.noCA {
		cfg.CAAddress = ""
	}
	switch o.pullPolicy {
	case "", "Always", "IfNotPresent", "Never":
		cfg.ImagePullPolicy = corev1.PullPolicy(o.pullPolicy)
	default:
		return fmt.Errorf("--image-pull-policy %q: want Always, IfNotPresent or Never", o.pullPolicy)
	}
	in, err := inject.New(cfg)
	if err != nil {
		return err
	}
	var r io.Reader = stdin
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return fmt.Errorf("-f: %w", err)
		}
		defer f.Close()
		r = f
	}
	out, err := in.Manifest(r)
	if err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	if o.output != "" {
		if err := os.WriteFile(o.output, out, 0o644); err != nil {
			return fmt.Errorf("-o: %w", err)
		}
		return nil
	}
	_, err = stdout.Write(out)
	return err
}
