package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStrip(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}
	for _, tc := range []struct {
		name string
		in   any
		want any
	}{
		{
			name: "pod keeps identity, placement, addresses and readiness",
			in: &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "a"},
					Annotations:   map[string]string{LastAppliedAnnotation: "{}", "sidecar.istio.io/status": "x"},
					ManagedFields: managed},
				Spec: corev1.PodSpec{ServiceAccountName: "sa", NodeName: "n1", HostNetwork: true,
					Containers: []corev1.Container{{Name: "app", Image: "img", Env: []corev1.EnvVar{{Name: "A", Value: "1"}}}},
					Volumes:    []corev1.Volume{{Name: "v"}}},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}},
					HostIP: "192.168.0.1",
					Conditions: []corev1.PodCondition{
						{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
						{Type: corev1.PodReady, Status: corev1.ConditionTrue, Message: "long text"},
					},
					ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Ready: true}}},
			},
			want: &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Labels: map[string]string{"app": "a"},
					Annotations: map[string]string{"sidecar.istio.io/status": "x"}},
				Spec: corev1.PodSpec{ServiceAccountName: "sa", NodeName: "n1", HostNetwork: true},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}},
					HostIP:     "192.168.0.1",
					Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
			},
		},
		{
			name: "node keeps labels and addresses",
			in: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{corev1.LabelTopologyZone: "z"}, ManagedFields: managed},
				Spec:       corev1.NodeSpec{PodCIDR: "10.0.0.0/24"},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}},
					Images: []corev1.ContainerImage{{Names: []string{"big"}}}},
			},
			want: &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{corev1.LabelTopologyZone: "z"}},
				Status:     corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}}},
			},
		},
		{
			name: "service keeps its spec; only annotation was last-applied",
			in: &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "s", Annotations: map[string]string{LastAppliedAnnotation: "{}"}, ManagedFields: managed},
				Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.5", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
			},
			want: &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "s"},
				Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.5", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
			},
		},
		{
			name: "istio object loses managed fields",
			in:   &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "vs", ManagedFields: managed}},
			want: &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Name: "vs"}},
		},
		{name: "not an object", in: "tombstone", want: "tombstone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Strip(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			opt := cmp.Comparer(func(a, b *networkingv1.VirtualService) bool {
				return a.Name == b.Name && len(a.ManagedFields) == len(b.ManagedFields)
			})
			if diff := cmp.Diff(tc.want, got, opt); diff != "" {
				t.Errorf("Strip (-want +got):\n%s", diff)
			}
			again, _ := Strip(got)
			if diff := cmp.Diff(tc.want, again, opt); diff != "" {
				t.Errorf("Strip is not idempotent (-want +got):\n%s", diff)
			}
		})
	}
}
