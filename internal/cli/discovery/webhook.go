package discovery

import (
	"fmt"
	"net"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"

	"github.com/trellismesh/trellis/internal/cli/kubeinject"
	"github.com/trellismesh/trellis/internal/discovery"
	"github.com/trellismesh/trellis/internal/kube/inject"
	"github.com/trellismesh/trellis/internal/kube/webhook"
)

// WebhookOptions are the flags of the admission webhooks (cluster mode).
type WebhookOptions struct {
	// Address of the webhook server ("" or "-": no webhooks).
	Address string
	// ProxyImage is the injected proxy and init containers' image.
	ProxyImage      string
	ImagePullPolicy string
	// XDSAddress and CAAddress are the control plane as pods reach it
	// (default istiod.<system-ns>.svc:15012); CAAddress "-" injects
	// proxies without a workload identity.
	XDSAddress, CAAddress string
	// NativeSidecar is auto (from the API server's version), true or false.
	NativeSidecar string
	// InterceptionMode is the mesh default interception mode (REDIRECT,
	// TPROXY or NONE).
	InterceptionMode string
	// Service and ServiceNamespace name the webhook's Service (the
	// serving certificate's names; default istiod in the system namespace).
	Service, ServiceNamespace string
	// MutatingConfig and ValidatingConfig are the webhook configurations
	// whose caBundle the leader keeps current.
	MutatingConfig, ValidatingConfig string
	Revision                         string
	// IPs are extra IP SANs of the serving certificate, for an API server
	// that reaches the webhook by address (clientConfig.url).
	IPs []net.IP
}

func (w *WebhookOptions) flags(f *pflag.FlagSet) {
	f.StringVar(&w.Address, "webhook-address", envOr("TRELLIS_WEBHOOK_ADDRESS", webhook.DefaultAddress), "listen address of the injection and validation webhooks on a cluster (\"-\" disables them)")
	f.StringVar(&w.ProxyImage, "proxy-image", envOr("TRELLIS_PROXY_IMAGE", kubeinject.DefaultImage), "image of the injected proxy and init containers (env TRELLIS_PROXY_IMAGE)")
	f.StringVar(&w.ImagePullPolicy, "proxy-image-pull-policy", "", "imagePullPolicy of the injected containers (Always, IfNotPresent, Never; default: the cluster's)")
	f.StringVar(&w.XDSAddress, "injected-xds-address", "", "xDS address injected proxies dial (default istiod.<system-namespace>.svc:15012)")
	f.StringVar(&w.CAAddress, "injected-ca-address", "", "CA address injected proxies dial (default istiod.<system-namespace>.svc:15012; \"-\": no workload identity)")
	f.StringVar(&w.NativeSidecar, "native-sidecar", "auto", "inject the proxy as a native sidecar: auto (when the API server is 1.29 or later), true or false")
	f.StringVar(&w.InterceptionMode, "interception-mode", inject.ModeRedirect, "how traffic reaches injected proxies: REDIRECT, TPROXY or NONE (mesh default; proxy.istio.io/config and sidecar.istio.io/interceptionMode override it per pod)")
	f.StringVar(&w.Service, "webhook-service", "istiod", "name of the Service in front of the webhooks (the serving certificate is issued for its DNS names)")
	f.StringVar(&w.ServiceNamespace, "webhook-service-namespace", "", "namespace of the webhook Service (default: the system namespace)")
	f.StringVar(&w.MutatingConfig, "webhook-mutating-config", webhook.MutatingName, "MutatingWebhookConfiguration whose caBundle the leader keeps current")
	f.StringVar(&w.ValidatingConfig, "webhook-validating-config", webhook.ValidatingName, "ValidatingWebhookConfiguration whose caBundle the leader keeps current")
	f.IPSliceVar(&w.IPs, "webhook-ip", nil, "extra IP address in the webhook's serving certificate, for webhook configurations that call it by URL (repeatable)")
	f.StringVar(&w.Revision, "revision", "default", "control-plane revision (istio.io/rev) recorded by the injector")
}

// config turns the options into the control plane's webhook configuration
// (nil when disabled). Webhooks need the CA for their certificate.
func (w WebhookOptions) config(systemNS string, caEnabled bool, trustDomain, domain string) (*discovery.WebhookConfig, error) {
	if w.Address == "" || w.Address == "-" {
		return nil, nil
	}
	if !caEnabled {
		return nil, fmt.Errorf("--webhook-address %q needs the CA (its certificate comes from it): enable --secure-grpc-address or set --webhook-address -", w.Address)
	}
	if _, _, err := net.SplitHostPort(w.Address); err != nil {
		return nil, fmt.Errorf("--webhook-address %q: %w", w.Address, err)
	}
	def := "istiod." + systemNS + ".svc:15012"
	xds, caAddr := w.XDSAddress, w.CAAddress
	if xds == "" {
		xds = def
	}
	switch caAddr {
	case "":
		caAddr = def
	case "-":
		caAddr = ""
	}
	image := w.ProxyImage
	if image == "" {
		image = kubeinject.DefaultImage
	}
	var native, auto bool
	switch w.NativeSidecar {
	case "", "auto":
		auto = true
	case "true":
		native = true
	case "false":
	default:
		return nil, fmt.Errorf("--native-sidecar %q: want auto, true or false", w.NativeSidecar)
	}
	switch corev1.PullPolicy(w.ImagePullPolicy) {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return nil, fmt.Errorf("--proxy-image-pull-policy %q: want Always, IfNotPresent or Never", w.ImagePullPolicy)
	}
	return &discovery.WebhookConfig{
		Address: w.Address,
		Injector: inject.Config{
			Image: image, ImagePullPolicy: corev1.PullPolicy(w.ImagePullPolicy),
			XDSAddress: xds, CAAddress: caAddr,
			TrustDomain: trustDomain, ClusterDomain: domain,
			Revision: w.Revision, NativeSidecar: native,
			InterceptionMode: w.InterceptionMode,
		},
		NativeSidecarAuto: auto,
		ServiceName:       w.Service,
		ServiceNamespace:  w.ServiceNamespace,
		MutatingName:      w.MutatingConfig,
		ValidatingName:    w.ValidatingConfig,
		IPs:               w.IPs,
	}, nil
}
