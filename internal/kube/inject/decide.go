package inject

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ignoredNamespaces never get sidecars, whatever their labels say (as in
// Istio).
var ignoredNamespaces = map[string]bool{"kube-system": true, "kube-public": true, "kube-node-lease": true, "local-path-storage": true}

// NamespaceEnabled reports whether a namespace with these labels asks for
// injection by the control plane of this revision: istio-injection=enabled,
// or, without an istio-injection label, istio.io/rev naming the revision.
// The webhook configurations (WebhookConfigs) encode the same rule as
// namespace selectors, so that the API server only calls for such pods.
func NamespaceEnabled(labels map[string]string, revision string) bool {
	if revision == "" {
		revision = "default"
	}
	if v, ok := labels[NamespaceLabel]; ok {
		return v == "enabled" && revision == "default"
	}
	rev, ok := labels[RevisionLabel]
	return ok && rev == revision
}

// Decision is the outcome of Required.
type Decision struct {
	Inject bool
	// Reason says why, for logs and `kube-inject` messages.
	Reason string
}

// Required decides whether pod gets a sidecar, given whether its namespace
// asks for injection (NamespaceEnabled, or, in the webhook, the fact that
// the API server's namespace selector matched). In order:
//
//   - a pod in a system namespace, a host-network pod and a pod that
//     already has a sidecar (status annotation or an istio-proxy container)
//     are left alone;
//   - the pod label sidecar.istio.io/inject (or the deprecated annotation
//     of that name) "true" or "false" decides;
//   - otherwise the namespace does.
func Required(pod *corev1.Pod, namespaceEnabled bool) Decision {
	switch {
	case ignoredNamespaces[pod.Namespace]:
		return Decision{false, "namespace " + pod.Namespace + " is never injected"}
	case pod.Spec.HostNetwork:
		return Decision{false, "the pod uses the host network"}
	case Injected(pod):
		return Decision{false, "the pod already has a sidecar"}
	}
	v, ok := pod.Labels[InjectKey]
	if !ok {
		v, ok = pod.Annotations[InjectKey]
	}
	if ok {
		switch strings.ToLower(v) {
		case "true", "y", "yes", "on":
			return Decision{true, InjectKey + "=" + v}
		case "false", "n", "no", "off":
			return Decision{false, InjectKey + "=" + v}
		}
	}
	if namespaceEnabled {
		return Decision{true, "the namespace enables injection"}
	}
	return Decision{false, "the namespace does not enable injection"}
}

// Injected reports whether pod already carries a Trellis (or Istio)
// sidecar.
func Injected(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[StatusAnnotation]; ok {
		return true
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == ProxyContainer {
			return true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == ProxyContainer {
			return true
		}
	}
	return false
}
