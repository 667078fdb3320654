package install

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Default values of Options.
const (
	DefaultNamespace = "istio-system"
	DefaultImage     = "ghcr.io/trellismesh/trellis:latest"
	DefaultRevision  = "default"
	// ServiceName is the control plane's Service. It is istiod so that
	// what Istio's sidecars, tools and charts expect
	// (istiod.<namespace>.svc:15012) reaches Trellis.
	ServiceName = "istiod"
	// Name is the name of the Deployment, ServiceAccount and RBAC objects.
	Name = "trellis"
)

// Ports of the control plane (Istio's).
const (
	PortXDS        = 15010 // plaintext xDS (grpc-xds)
	PortSecure     = 15012 // CA and xDS over mutual TLS (https-dns in Istio)
	PortMonitoring = 15014 // /metrics and /ready
	PortWebhook    = 15017 // admission webhooks (Service port 443)
)

// Options are what a user chooses about an installation.
type Options struct {
	// Namespace is the control plane's namespace (default istio-system).
	Namespace string
	// Image is the trellis image the Deployment runs.
	Image string
	// ImagePullPolicy of the Deployment's container; empty leaves the
	// cluster's default.
	ImagePullPolicy corev1.PullPolicy
	// Revision of the control plane (default "default"): labels, the
	// webhooks' istio.io/rev selector, and, for any other revision, the
	// names of its objects (<name>-<revision>: Deployment, ServiceAccount,
	// RBAC, Service istiod-<revision>, webhook configurations
	// trellis-sidecar-injector-<revision> and trellis-validator-<revision>).
	Revision string
	// Replicas of the Deployment (default 1).
	Replicas int32
}

// revisioned returns a name for o's revision: name itself for the default
// revision, name-<revision> otherwise (Istio's istiod-<rev>), so that two
// revisions installed in one namespace do not share objects.
func (o Options) revisioned(name string) string {
	if o.Revision == DefaultRevision {
		return name
	}
	return name + "-" + o.Revision
}

// withDefaults fills defaults and checks every field, naming the one at
// fault.
func (o Options) withDefaults() (Options, error) {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.Revision == "" {
		o.Revision = DefaultRevision
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	var errs []string
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("namespace %q: %s", o.Namespace, strings.Join(msgs, "; ")))
	}
	if msgs := validation.IsDNS1123Label(o.Revision); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("revision %q: %s", o.Revision, strings.Join(msgs, "; ")))
	}
	if strings.ContainsAny(o.Image, " \t\n") {
		errs = append(errs, fmt.Sprintf("image %q: must not contain white space", o.Image))
	}
	if o.Replicas < 0 {
		errs = append(errs, fmt.Sprintf("replicas %d: must not be negative", o.Replicas))
	}
	switch o.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Sprintf("image pull policy %q: must be Always, IfNotPresent or Never", o.ImagePullPolicy))
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("install options: %s", strings.Join(errs, "; "))
	}
	return o, nil
}
