package kube

import (
	"errors"
	"fmt"

	istioclient "istio.io/client-go/pkg/clientset/versioned"
	apiextensions "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	gatewayclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
)

// Client is the bundle of clients Trellis talks to a cluster with. Every
// field is set; they share one rest.Config (and so one credential and one
// rate limiter setting). A Client is safe for concurrent use.
type Client struct {
	// Kube is the client for Kubernetes' built-in kinds.
	Kube kubernetes.Interface
	// Istio is the client for Istio's CRDs (networking, security,
	// telemetry, extensions).
	Istio istioclient.Interface
	// GatewayAPI is the client for the Kubernetes Gateway API kinds.
	GatewayAPI gatewayclient.Interface
	// Dynamic reads and writes any kind as unstructured objects.
	Dynamic dynamic.Interface
	// Extensions manages CustomResourceDefinitions.
	Extensions apiextensions.Interface
	// Config is the configuration the clients were built from; nil for a
	// fake bundle (kubefake).
	Config *rest.Config
}

// Default client-side rate limits. client-go's own defaults (5 QPS, burst
// 10) are meant for kubectl; a control plane writing status for many
// objects needs more.
const (
	defaultQPS   = 50
	defaultBurst = 100
)

// New builds a client bundle from cfg. cfg is copied; a zero QPS or Burst
// is raised to Trellis's defaults. New does no I/O.
func New(cfg *rest.Config) (*Client, error) {
	if cfg == nil {
		return nil, errors.New("kube client: no rest config")
	}
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 {
		c.QPS = defaultQPS
	}
	if c.Burst == 0 {
		c.Burst = defaultBurst
	}
	if c.UserAgent == "" {
		c.UserAgent = "trellis"
	}
	kc, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("kube client: kubernetes clientset: %w", err)
	}
	ic, err := istioclient.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("kube client: istio clientset: %w", err)
	}
	gc, err := gatewayclient.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("kube client: gateway-api clientset: %w", err)
	}
	dc, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("kube client: dynamic client: %w", err)
	}
	ec, err := apiextensions.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("kube client: apiextensions clientset: %w", err)
	}
	return &Client{Kube: kc, Istio: ic, GatewayAPI: gc, Dynamic: dc, Extensions: ec, Config: c}, nil
}

// RestConfig loads a rest.Config the way kubectl does: from the kubeconfig
// file at path (with context, when not empty, selecting the context), or,
// when path is empty, from $KUBECONFIG / ~/.kube/config, falling back to the
// in-cluster service account when none of those exist.
func RestConfig(path, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		where := path
		if where == "" {
			where = "default kubeconfig or in-cluster config"
		}
		return nil, fmt.Errorf("loading kubeconfig (%s): %w", where, err)
	}
	return cfg, nil
}

// FromKubeconfig is RestConfig followed by New.
func FromKubeconfig(path, context string) (*Client, error) {
	cfg, err := RestConfig(path, context)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// InCluster builds a client bundle from the Pod's service account (the
// token and CA Kubernetes mounts, and KUBERNETES_SERVICE_HOST/PORT).
func InCluster() (*Client, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("in-cluster config: %w", err)
	}
	return New(cfg)
}

// InPod reports whether the process runs in a Kubernetes Pod with API
// access: KUBERNETES_SERVICE_HOST is set, as the kubelet does for every
// container.
func InPod(getenv func(string) string) bool {
	return getenv("KUBERNETES_SERVICE_HOST") != ""
}
