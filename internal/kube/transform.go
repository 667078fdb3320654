package kube

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
)

// LastAppliedAnnotation is the annotation kubectl apply writes: a full copy
// of the object, never read by Trellis.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Strip is the informers' transform: it drops from a cached object what
// Trellis never reads, so the caches' memory grows with what the mesh
// uses rather than with what users write. It mutates obj in place (an
// informer owns the objects it transforms), is idempotent, and leaves
// anything that is not a Kubernetes object as it is.
//
// Every object loses managedFields and the kubectl last-applied
// annotation. Pods and Nodes are cut down further (see stripPod and
// stripNode); other kinds keep everything else.
func Strip(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		stripPod(o)
	case *corev1.Node:
		stripNode(o)
	}
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a != nil {
			if _, ok := a[LastAppliedAnnotation]; ok {
				delete(a, LastAppliedAnnotation)
				if len(a) == 0 {
					m.SetAnnotations(nil)
				}
			}
		}
	}
	return obj, nil
}

// stripPod keeps a Pod's metadata, the scheduling and identity fields of
// its spec (service account, node, host network) and the addresses, phase
// and Ready condition of its status. Containers, volumes and the rest are
// dropped: the injector reads Pods from admission requests, not from the
// cache.
func stripPod(p *corev1.Pod) {
	var ready []corev1.PodCondition
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			ready = append(ready, corev1.PodCondition{Type: c.Type, Status: c.Status})
		}
	}
	p.Spec = corev1.PodSpec{
		ServiceAccountName: p.Spec.ServiceAccountName,
		NodeName:           p.Spec.NodeName,
		HostNetwork:        p.Spec.HostNetwork,
	}
	p.Status = corev1.PodStatus{
		Phase:      p.Status.Phase,
		Conditions: ready,
		HostIP:     p.Status.HostIP,
		HostIPs:    p.Status.HostIPs,
		PodIP:      p.Status.PodIP,
		PodIPs:     p.Status.PodIPs,
	}
}

// stripNode keeps a Node's metadata (its labels carry the locality) and its
// addresses.
func stripNode(n *corev1.Node) {
	n.Spec = corev1.NodeSpec{}
	n.Status = corev1.NodeStatus{Addresses: n.Status.Addresses}
}
