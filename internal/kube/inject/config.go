package inject

import (
	"errors"
	"fmt"
	"net"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Names and ports of what the injector adds, as Istio names them.
const (
	ProxyContainer = "istio-proxy"
	InitContainer  = "istio-init"

	// ProxyUID and ProxyGID are the proxy's user and group: the capture
	// rules let this user's traffic through.
	ProxyUID = 1337
	ProxyGID = 1337

	// StatusPort serves /healthz/ready; MetricsPort the merged Prometheus
	// metrics and the rewritten application probes (/app-health/...).
	StatusPort  = 15021
	MetricsPort = 15020

	// StatusAnnotation records what was injected; its presence makes
	// injection a no-op.
	StatusAnnotation = "sidecar.istio.io/status"
	// InjectKey is the pod label (or, as Istio still honours, annotation)
	// that forces injection on ("true") or off ("false").
	InjectKey = "sidecar.istio.io/inject"
	// NamespaceLabel is the namespace label that enables injection.
	NamespaceLabel = "istio-injection"
	// RevisionLabel selects a control-plane revision on a namespace.
	RevisionLabel = "istio.io/rev"

	// ProbersEnv carries the original application probes to the proxy.
	ProbersEnv = "ISTIO_KUBE_APP_PROBERS"
)

// Volume names and mount paths (Istio's).
const (
	envoyVolume   = "istio-envoy"
	envoyPath     = "/etc/istio/proxy"
	tokenVolume   = "istio-token"
	tokenPath     = "/var/run/secrets/tokens"
	tokenFile     = tokenPath + "/istio-token"
	tokenAudience = "istio-ca"
	rootVolume    = "istiod-ca-cert"
	rootPath      = "/var/run/secrets/istio"
	rootFile      = rootPath + "/root-cert.pem"
	// RootConfigMap is the ConfigMap, in every namespace, that holds the
	// mesh's root certificate under root-cert.pem.
	RootConfigMap = "istio-ca-root-cert"
)

// Config is the mesh-wide injection configuration: what the injected
// containers run and where they find the control plane.
type Config struct {
	// Image is the image of the init and proxy containers (required); the
	// pod annotation sidecar.istio.io/proxyImage overrides it.
	Image string
	// ImagePullPolicy of the injected containers; empty leaves the
	// cluster's default.
	ImagePullPolicy corev1.PullPolicy
	// Binary is the trellis executable in Image (default "trellis").
	Binary string
	// XDSAddress is the control plane's xDS address as the pod reaches it
	// (required), e.g. "istiod.istio-system.svc:15012".
	XDSAddress string
	// CAAddress is the mesh CA's address; empty injects proxies without a
	// workload identity (and so without mesh TLS).
	CAAddress string
	// TrustDomain (default "cluster.local") and ClusterDomain (the DNS
	// suffix, default "cluster.local").
	TrustDomain   string
	ClusterDomain string
	// Revision is the control-plane revision written into the status
	// annotation and matched against istio.io/rev (default "default").
	Revision string
	// NativeSidecar injects the proxy as an init container with
	// restartPolicy Always (Kubernetes 1.29 and later). The pod annotation
	// sidecar.istio.io/nativeSidecar overrides it.
	NativeSidecar bool
	// HoldApplicationUntilProxyStarts is the mesh default of the proxy
	// config field of that name.
	HoldApplicationUntilProxyStarts bool
	// InterceptionMode is the mesh default of the proxy config field of
	// that name (Istio's meshConfig.defaultConfig.interceptionMode):
	// REDIRECT (the default when empty), TPROXY or NONE. The pod's
	// proxy.istio.io/config and sidecar.istio.io/interceptionMode (which
	// wins) override it.
	InterceptionMode string
	// NoProbeRewrite turns off the rewriting of application probes
	// (Istio's rewriteAppHTTPProbe=false); the pod annotation
	// sidecar.istio.io/rewriteAppHTTPProbers overrides it.
	NoProbeRewrite bool
	// Resources of the proxy (and init) container; nil fields get Istio's
	// defaults: requests 100m CPU / 128Mi, limits 2 CPUs / 1Gi.
	Resources *corev1.ResourceRequirements
}

// withDefaults returns c with defaults applied, or an error naming the
// field at fault.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.Image == "" {
		errs = append(errs, errors.New("injection config: Image is required"))
	}
	if c.XDSAddress == "" {
		errs = append(errs, errors.New("injection config: XDSAddress is required"))
	} else if _, _, err := net.SplitHostPort(c.XDSAddress); err != nil {
		errs = append(errs, fmt.Errorf("injection config: XDSAddress %q: %w", c.XDSAddress, err))
	}
	if c.CAAddress != "" {
		if _, _, err := net.SplitHostPort(c.CAAddress); err != nil {
			errs = append(errs, fmt.Errorf("injection config: CAAddress %q: %w", c.CAAddress, err))
		}
	}
	if c.Binary == "" {
		c.Binary = "trellis"
	}
	switch c.InterceptionMode {
	case "":
		c.InterceptionMode = ModeRedirect
	case ModeRedirect, ModeTProxy, ModeNone:
	default:
		errs = append(errs, fmt.Errorf("injection config: InterceptionMode %q: want %s, %s or %s", c.InterceptionMode, ModeRedirect, ModeTProxy, ModeNone))
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "cluster.local"
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.Revision == "" {
		c.Revision = "default"
	}
	if strings.ContainsAny(c.Binary, " \t") {
		errs = append(errs, fmt.Errorf("injection config: Binary %q: must not contain spaces", c.Binary))
	}
	res := corev1.ResourceRequirements{}
	if c.Resources != nil {
		res = *c.Resources.DeepCopy()
	}
	if res.Requests == nil {
		res.Requests = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		}
	}
	if res.Limits == nil {
		res.Limits = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("2"),
			corev1.ResourceMemory: resource.MustParse("1Gi"),
		}
	}
	c.Resources = &res
	return c, errors.Join(errs...)
}
