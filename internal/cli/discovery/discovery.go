// Package discovery implements `trellis discovery`: flags and environment
// are parsed here, once, into discovery.Config, and the control plane runs
// until interrupted.
package discovery

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/trellismesh/trellis/internal/ca"
	"github.com/trellismesh/trellis/internal/discovery"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/leader"
	"github.com/trellismesh/trellis/internal/model"
)

// Options are the command's flags.
type Options struct {
	ConfigDir         string
	XDSAddress        string
	MonitoringAddress string
	Debounce          time.Duration
	MeshConfigFile    string
	DomainSuffix      string
	GCPercent         int
	SecureGRPCAddress string
	CADir             string
	TrustDomain       string
	// Kubeconfig, KubeContext: the cluster to serve. An empty Kubeconfig
	// means the Pod's service account when running in a Pod, else none.
	Kubeconfig      string
	KubeContext     string
	SystemNamespace string
	// Cluster mode only (see webhook.go).
	Webhook WebhookOptions
	// LeaderIdentity names this replica in the leader Lease (env POD_NAME;
	// empty: host name and process id); LeaderLease is the Lease's name.
	LeaderIdentity string
	LeaderLease    string
	// JWKSRefresh is how often jwksUri key sets are fetched again, a Go
	// duration (env PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, as Istio's; "":
	// the default, 20m).
	JWKSRefresh string
	// SendUnhealthyEndpoints: not-ready endpoints go to EDS as UNHEALTHY
	// (env PILOT_SEND_UNHEALTHY_ENDPOINTS, as Istio's).
	SendUnhealthyEndpoints string
}

// NewCommand returns `trellis discovery`. newLogger builds the process logger.
func NewCommand(logger *slog.Logger) *cobra.Command {
	var o Options
	cmd := &cobra.Command{
		Use:   "discovery",
		Short: "Run the control plane: Istio configuration in, xDS out",
		Long: `Run the Trellis control plane (istiod's job).

In local mode it reads Istio YAML from --config-dir, watches it for changes,
builds services from ServiceEntry and WorkloadEntry objects and serves Envoy
xDS (ADS, state-of-the-world and delta) on --xds-address. Prometheus metrics
are served on --monitoring-address at /metrics.

The CA (Istio's IstioCertificateService) and xDS over mutual TLS are served
on --secure-grpc-address: a proxy presenting its mesh certificate is served
as the identity in it (node metadata claiming another namespace or service
account is refused). It keeps its root in --ca-dir, generated on first
start; put an operator's intermediate there instead (ca-cert.pem, ca-key.pem,
cert-chain.pem, root-cert.pem) to plug in your own root. Local workloads get
their first certificate with a bootstrap token from <ca-dir>/bootstrap.

On Kubernetes (--kubeconfig, or the Pod's service account when it runs in a
Pod) it also serves the cluster: Services, EndpointSlices and Pods become
services and endpoints, and Istio's and the Gateway API's custom resources
are read like the files of --config-dir (which is then optional). An invalid
object is reported (dashboard, logs) and its last valid version keeps
serving.

On a cluster the CA's root and key live in the Secret istio-ca-secret of the
system namespace (created on first start; every replica uses it); a Secret
cacerts (Istio's four files, or cert-manager's tls.crt/tls.key/ca.crt) plugs
in your own CA instead, and --ca-dir is not used. Workloads authenticate to
the CA with service-account tokens for the audience istio-ca (TokenReview).
The admission webhooks (sidecar injection on /inject, validation on
/validate) are served on --webhook-address with a certificate from the CA for
the webhook Service's names. Replicas elect a leader with a Lease; the leader
publishes the root to the ConfigMap istio-ca-root-cert of every namespace and
keeps the webhook configurations' caBundle current.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := o.Config(logger)
			if err != nil {
				return err
			}
			if _, set := os.LookupEnv("GOGC"); !set && o.GCPercent > 0 {
				debug.SetGCPercent(o.GCPercent)
			}
			srv, err := discovery.New(cfg)
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ConfigDir, "config-dir", envOr("TRELLIS_CONFIG_DIR", ""), "directory of Istio YAML to read and watch (env TRELLIS_CONFIG_DIR)")
	f.StringVar(&o.XDSAddress, "xds-address", envOr("TRELLIS_XDS_ADDRESS", ":15010"), "plaintext xDS listen address, for local and development use (\"-\" disables it: proxies then use the secure port with their mesh certificate)")
	f.StringVar(&o.MonitoringAddress, "monitoring-address", envOr("TRELLIS_MONITORING_ADDRESS", ":15014"), "metrics listen address (\"-\" disables)")
	f.DurationVar(&o.Debounce, "debounce", 100*time.Millisecond, "quiet time before configuration changes are pushed")
	f.StringVar(&o.MeshConfigFile, "mesh-config", "", "Istio MeshConfig YAML file (defaults as Istio's)")
	f.StringVar(&o.DomainSuffix, "domain", model.DefaultDomainSuffix, "DNS domain suffix used to complete short host names")
	f.StringVar(&o.SecureGRPCAddress, "secure-grpc-address", envOr("TRELLIS_SECURE_GRPC_ADDRESS", ":15012"), "TLS listen address of the CA service and of xDS over mutual TLS (\"-\" disables both)")
	f.StringVar(&o.CADir, "ca-dir", envOr("TRELLIS_CA_DIR", filepath.Join(".trellis", "ca")), "CA directory: a plugged-in CA's four files, or where the self-signed root is generated and kept (env TRELLIS_CA_DIR)")
	f.StringVar(&o.TrustDomain, "trust-domain", "", "SPIFFE trust domain of issued identities (default: the mesh config's trustDomain, cluster.local)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", envOr("KUBECONFIG", ""), "kubeconfig of the cluster to serve (env KUBECONFIG; empty: the Pod's service account when running in a Pod, else no cluster)")
	f.StringVar(&o.KubeContext, "kube-context", "", "kubeconfig context to use (default: the current context)")
	f.StringVar(&o.SystemNamespace, "system-namespace", envOr("POD_NAMESPACE", "istio-system"), "the control plane's namespace on the cluster (env POD_NAMESPACE)")
	o.Webhook.flags(f)
	f.StringVar(&o.LeaderIdentity, "leader-identity", envOr("POD_NAME", ""), "this replica's identity in leader election (env POD_NAME; default: host name and process id)")
	f.StringVar(&o.LeaderLease, "leader-lease", leader.DefaultLease, "name of the leader-election Lease in the system namespace")
	f.StringVar(&o.JWKSRefresh, "jwt-pub-key-refresh-interval", envOr("PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", "20m"), "how often RequestAuthentication jwksUri key sets are fetched again, so that rotated keys reach the proxies (env PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, as Istio's)")
	f.StringVar(&o.SendUnhealthyEndpoints, "send-unhealthy-endpoints", envOr("PILOT_SEND_UNHEALTHY_ENDPOINTS", "false"), "on a cluster, publish not-ready endpoints as UNHEALTHY in EDS instead of leaving them out (env PILOT_SEND_UNHEALTHY_ENDPOINTS, as Istio's)")
	f.IntVar(&o.GCPercent, "gc-percent", 200, "Go GC target percentage (GOGC) unless GOGC is set: the control plane keeps a small live heap and allocates heavily while pushing, so a higher target trades some memory for less GC work (see docs/benchmarks.md)")
	return cmd
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

// Config turns the options into the control plane's configuration.
func (o Options) Config(logger *slog.Logger) (discovery.Config, error) {
	return o.config(logger, os.Getenv)
}

func (o Options) config(logger *slog.Logger, getenv func(string) string) (discovery.Config, error) {
	kc, err := o.kubeClient(getenv)
	if err != nil {
		return discovery.Config{}, err
	}
	if o.ConfigDir == "" && kc == nil {
		return discovery.Config{}, fmt.Errorf("--config-dir is required in local mode (without --kubeconfig and outside a Pod)")
	}
	if o.ConfigDir != "" {
		if st, err := os.Stat(o.ConfigDir); err != nil || !st.IsDir() {
			return discovery.Config{}, fmt.Errorf("--config-dir %q: not a readable directory", o.ConfigDir)
		}
	}
	mesh, err := LoadMesh(o.MeshConfigFile)
	if err != nil {
		return discovery.Config{}, err
	}
	secure := o.SecureGRPCAddress
	if secure == "-" {
		secure = ""
	}
	if secure == "" && o.XDSAddress == "-" {
		return discovery.Config{}, fmt.Errorf("--xds-address - and --secure-grpc-address - leave no xDS port: keep one")
	}
	caDir := o.CADir
	if kc != nil {
		// On a cluster the CA lives in Secrets and workloads authenticate
		// with service-account tokens.
		caDir = ""
	}
	if secure != "" && kc == nil && o.CADir == "" {
		return discovery.Config{}, fmt.Errorf("--ca-dir is required when the CA is enabled (--secure-grpc-address %q)", secure)
	}
	if o.TrustDomain != "" {
		if err := ca.ValidateTrustDomain(o.TrustDomain); err != nil {
			return discovery.Config{}, fmt.Errorf("--trust-domain: %w", err)
		}
	}
	var jwksRefresh time.Duration
	if o.JWKSRefresh != "" {
		if jwksRefresh, err = time.ParseDuration(o.JWKSRefresh); err != nil || jwksRefresh <= 0 {
			return discovery.Config{}, fmt.Errorf("--jwt-pub-key-refresh-interval (env PILOT_JWT_PUB_KEY_REFRESH_INTERVAL) %q: not a positive duration such as 20m or 30s", o.JWKSRefresh)
		}
	}
	sendUnhealthy := false
	if o.SendUnhealthyEndpoints != "" {
		if sendUnhealthy, err = strconv.ParseBool(o.SendUnhealthyEndpoints); err != nil {
			return discovery.Config{}, fmt.Errorf("--send-unhealthy-endpoints (env PILOT_SEND_UNHEALTHY_ENDPOINTS) %q: not a boolean (true or false)", o.SendUnhealthyEndpoints)
		}
	}
	var wh *discovery.WebhookConfig
	if kc != nil {
		if wh, err = o.Webhook.config(o.SystemNamespace, secure != "", o.TrustDomain, o.DomainSuffix); err != nil {
			return discovery.Config{}, err
		}
	}
	return discovery.Config{
		Webhook:           wh,
		Leader:            discovery.LeaderConfig{Identity: o.LeaderIdentity, Lease: o.LeaderLease},
		SecureGRPCAddress: secure,
		CADir:             caDir,
		TrustDomain:       o.TrustDomain,
		ConfigDir:         o.ConfigDir,
		Kube:              kc,
		SystemNamespace:   o.SystemNamespace,

		SendUnhealthyEndpoints: sendUnhealthy,
		XDSAddress:             o.XDSAddress,
		MonitoringAddress:      o.MonitoringAddress,
		Debounce:               o.Debounce,
		Mesh:                   mesh,
		DomainSuffix:           o.DomainSuffix,
		JWKSRefresh:            jwksRefresh,
		Logger:                 logger,
	}, nil
}

// kubeClient returns the client of the cluster to serve: from --kubeconfig
// (and --kube-context), else from the Pod's service account when running
// in a Pod, else nil (local mode). It reads files but does not contact the
// cluster.
func (o Options) kubeClient(getenv func(string) string) (*kube.Client, error) {
	switch {
	case o.Kubeconfig != "":
		kc, err := kube.FromKubeconfig(o.Kubeconfig, o.KubeContext)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
		return kc, nil
	case o.KubeContext != "":
		return nil, fmt.Errorf("--kube-context %q needs --kubeconfig", o.KubeContext)
	case kube.InPod(getenv):
		kc, err := kube.InCluster()
		if err != nil {
			return nil, fmt.Errorf("running in a Pod without --kubeconfig: %w", err)
		}
		return kc, nil
	}
	return nil, nil
}

// LoadMesh reads a MeshConfig YAML file over Istio's defaults ("" = defaults).
func LoadMesh(path string) (*meshconfig.MeshConfig, error) {
	mesh := model.DefaultMesh()
	if path == "" {
		return mesh, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mesh config: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", path, err)
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, mesh); err != nil {
		return nil, fmt.Errorf("mesh config %s: %w", path, err)
	}
	return mesh, nil
}
