package kube

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/model"
)

func ptr[T any](v T) *T { return &v }

func TestProtocol(t *testing.T) {
	for _, tc := range []struct {
		name string
		port corev1.ServicePort
		want model.Protocol
	}{
		{"name http", corev1.ServicePort{Name: "http", Port: 80}, model.ProtocolHTTP},
		{"name prefix with suffix", corev1.ServicePort{Name: "grpc-api", Port: 9090}, model.ProtocolGRPC},
		{"name is case-insensitive", corev1.ServicePort{Name: "HTTP2-x", Port: 81}, model.ProtocolHTTP2},
		{"grpc-web before the dash rule", corev1.ServicePort{Name: "grpc-web-ui", Port: 82}, model.ProtocolGRPCWeb},
		{"appProtocol wins over name", corev1.ServicePort{Name: "http", Port: 83, AppProtocol: ptr("grpc")}, model.ProtocolGRPC},
		{"appProtocol unknown is not replaced by the name", corev1.ServicePort{Name: "http", Port: 84, AppProtocol: ptr("custom")}, model.ProtocolUnsupported},
		{"appProtocol kubernetes.io/h2c", corev1.ServicePort{Name: "web", Port: 85, AppProtocol: ptr("kubernetes.io/h2c")}, model.ProtocolHTTP2},
		{"appProtocol kubernetes.io/ws", corev1.ServicePort{Port: 86, AppProtocol: ptr("kubernetes.io/ws")}, model.ProtocolHTTP},
		{"appProtocol kubernetes.io/wss", corev1.ServicePort{Port: 87, AppProtocol: ptr("kubernetes.io/wss")}, model.ProtocolHTTPS},
		{"udp whatever the name", corev1.ServicePort{Name: "http", Port: 88, Protocol: corev1.ProtocolUDP}, model.ProtocolUDP},
		{"unnamed is sniffed", corev1.ServicePort{Port: 8080}, model.ProtocolUnsupported},
		{"unknown prefix is sniffed", corev1.ServicePort{Name: "web", Port: 8080}, model.ProtocolUnsupported},
		{"well-known mysql port is tcp", corev1.ServicePort{Name: "db", Port: 3306}, model.ProtocolTCP},
		{"well-known dns port is tcp", corev1.ServicePort{Port: 53}, model.ProtocolTCP},
		{"declared protocol beats well-known port", corev1.ServicePort{Name: "http", Port: 25}, model.ProtocolHTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Protocol(tc.port); got != tc.want {
				t.Errorf("Protocol(%+v) = %s, want %s", tc.port, got, tc.want)
			}
		})
	}
}

func TestConvertService(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	meta := func(name string, ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: "shop", Labels: map[string]string{"app": name},
			Annotations: ann, CreationTimestamp: metav1.NewTime(created)}
	}
	source := func(name string) config.Key {
		return config.Key{Kind: config.GroupKind{Kind: "Service"}, Namespace: "shop", Name: name}
	}
	for _, tc := range []struct {
		name string
		svc  *corev1.Service
		want *model.Service
	}{
		{
			name: "cluster IP, ports sorted, numeric and named target ports",
			svc: &corev1.Service{
				ObjectMeta: meta("cart", map[string]string{annotationExportTo: "., istio-system"}),
				Spec: corev1.ServiceSpec{
					ClusterIP: "10.96.0.10", ClusterIPs: []string{"10.96.0.10", "fd00::a"},
					Selector: map[string]string{"app": "cart"},
					Ports: []corev1.ServicePort{
						{Name: "http", Port: 8080, TargetPort: intstr.FromString("web")},
						{Name: "grpc", Port: 80, TargetPort: intstr.FromInt32(9090)},
					},
				},
			},
			want: &model.Service{
				Hostname: "cart.shop.svc.cluster.local", Namespace: "shop",
				Addresses:  []string{"10.96.0.10", "fd00::a"},
				Resolution: model.ClientSideLB,
				Ports: []model.Port{
					{Name: "grpc", Number: 80, Protocol: model.ProtocolGRPC, TargetPort: 9090},
					{Name: "http", Number: 8080, Protocol: model.ProtocolHTTP},
				},
				ExportTo:          []string{"istio-system", "shop"},
				Labels:            map[string]string{"app": "cart"},
				Selector:          map[string]string{"app": "cart"},
				Source:            source("cart"),
				CreationTimestamp: created,
			},
		},
		{
			name: "headless",
			svc: &corev1.Service{
				ObjectMeta: meta("db", nil),
				Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone},
					Ports: []corev1.ServicePort{{Name: "tcp", Port: 5432}}},
			},
			want: &model.Service{
				Hostname: "db.shop.svc.cluster.local", Namespace: "shop",
				Resolution: model.Passthrough,
				Ports:      []model.Port{{Name: "tcp", Number: 5432, Protocol: model.ProtocolTCP}},
				Labels:     map[string]string{"app": "db"},
				Source:     source("db"), CreationTimestamp: created,
			},
		},
		{
			name: "external name",
			svc: &corev1.Service{
				ObjectMeta: meta("ext", nil),
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "api.example.com",
					Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
			},
			want: &model.Service{
				Hostname: "ext.shop.svc.cluster.local", Namespace: "shop",
				Resolution: model.DNSLB, MeshExternal: true,
				Ports:  []model.Port{{Name: "https", Number: 443, Protocol: model.ProtocolHTTPS}},
				Labels: map[string]string{"app": "ext"},
				Source: source("ext"), CreationTimestamp: created,
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ConvertService(tc.svc, "cluster.local")); diff != "" {
				t.Errorf("ConvertService (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEndpointHealth(t *testing.T) {
	tr, fa := ptr(true), ptr(false)
	for _, tc := range []struct {
		name string
		c    discoveryv1.EndpointConditions
		want Health
	}{
		{"all unset", discoveryv1.EndpointConditions{}, Healthy},
		{"ready", discoveryv1.EndpointConditions{Ready: tr}, Healthy},
		{"ready while terminating", discoveryv1.EndpointConditions{Ready: tr, Terminating: tr}, Healthy},
		{"terminating and serving", discoveryv1.EndpointConditions{Ready: fa, Serving: tr, Terminating: tr}, Draining},
		{"terminating, not serving", discoveryv1.EndpointConditions{Ready: fa, Serving: fa, Terminating: tr}, Terminating},
		{"not ready, not terminating", discoveryv1.EndpointConditions{Ready: fa, Serving: fa, Terminating: fa}, Unhealthy},
		{"not ready, serving, not terminating", discoveryv1.EndpointConditions{Ready: fa, Serving: tr, Terminating: fa}, Unhealthy},
	} {
		if got := EndpointHealth(tc.c); got != tc.want {
			t.Errorf("%s: EndpointHealth = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestWorkloadName(t *testing.T) {
	owner := func(kind, name string, controller bool) []metav1.OwnerReference {
		return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &controller}}
	}
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"no owner", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}, "p"},
		{"deployment via replicaset", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f-abc",
			Labels: map[string]string{labelPodTemplate: "7d9f"}, OwnerReferences: owner("ReplicaSet", "web-7d9f", true)}}, "web"},
		{"bare replicaset", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "rs-x",
			OwnerReferences: owner("ReplicaSet", "rs", true)}}, "rs"},
		{"statefulset", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0",
			OwnerReferences: owner("StatefulSet", "db", true)}}, "db"},
		{"non-controller owner ignored", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p",
			OwnerReferences: owner("ConfigMap", "cm", false)}}, "p"},
	} {
		if got := WorkloadName(tc.pod); got != tc.want {
			t.Errorf("%s: WorkloadName = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNodeLocality(t *testing.T) {
	node := func(l map[string]string) *corev1.Node { return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: l}} }
	for _, tc := range []struct {
		name string
		node *corev1.Node
		want string
	}{
		{"unknown node", nil, ""},
		{"unlabelled", node(nil), ""},
		{"region and zone", node(map[string]string{corev1.LabelTopologyRegion: "eu-west1", corev1.LabelTopologyZone: "eu-west1-b"}), "eu-west1/eu-west1-b"},
		{"region only", node(map[string]string{corev1.LabelTopologyRegion: "us"}), "us"},
		{"with subzone", node(map[string]string{corev1.LabelTopologyRegion: "r", corev1.LabelTopologyZone: "z", labelSubzone: "rack1"}), "r/z/rack1"},
	} {
		if got := nodeLocality(tc.node); got != tc.want {
			t.Errorf("%s: locality = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPublishedHealth checks which endpoints a service's EDS carries, and
// with what health, from their EndpointSlice conditions: Istio's rules.
func TestPublishedHealth(t *testing.T) {
	tr, fa := ptr(true), ptr(false)
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "s", Namespace: "shop"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("http"), Port: ptr(int32(9080))}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: tr}},
			{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: fa, Serving: tr, Terminating: tr}},
			{Addresses: []string{"10.0.0.3"}, Conditions: discoveryv1.EndpointConditions{Ready: fa, Serving: fa, Terminating: tr}},
			{Addresses: []string{"10.0.0.4"}, Conditions: discoveryv1.EndpointConditions{Ready: fa, Serving: fa, Terminating: fa}},
		},
	}
	// The same address in a second slice (moving between slices): the
	// healthy copy wins whatever the order.
	moving := &discoveryv1.EndpointSlice{
		ObjectMeta: slice.ObjectMeta, AddressType: discoveryv1.AddressTypeIPv4, Ports: slice.Ports,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.4"}, Conditions: discoveryv1.EndpointConditions{Ready: tr}}},
	}
	lk := lookup{pod: func(string, string) *corev1.Pod { return nil }, node: func(string) *corev1.Node { return nil }}
	svc := func(labels map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Labels: labels}}
	}
	for _, tc := range []struct {
		name          string
		svc           *corev1.Service
		sendUnhealthy bool
		slices        []*discoveryv1.EndpointSlice
		want          []string
	}{
		{"default: ready only", svc(nil), false, []*discoveryv1.EndpointSlice{slice}, []string{"10.0.0.1 HEALTHY"}},
		{"persistent sessions: draining too", svc(map[string]string{LabelPersistentSession: "cookie"}), false,
			[]*discoveryv1.EndpointSlice{slice}, []string{"10.0.0.1 HEALTHY", "10.0.0.2 DRAINING"}},
		{"persistent session header label", svc(map[string]string{LabelPersistentSessionHeader: "x-session"}), false,
			[]*discoveryv1.EndpointSlice{slice}, []string{"10.0.0.1 HEALTHY", "10.0.0.2 DRAINING"}},
		{"send unhealthy: not ready as UNHEALTHY, terminating never", svc(nil), true,
			[]*discoveryv1.EndpointSlice{slice}, []string{"10.0.0.1 HEALTHY", "10.0.0.4 UNHEALTHY"}},
		{"healthy copy wins", svc(nil), true, []*discoveryv1.EndpointSlice{slice, moving},
			[]string{"10.0.0.1 HEALTHY", "10.0.0.4 HEALTHY"}},
		{"healthy copy wins, other order", svc(nil), true, []*discoveryv1.EndpointSlice{moving, slice},
			[]string{"10.0.0.1 HEALTHY", "10.0.0.4 HEALTHY"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, ep := range convertEndpoints(tc.slices, lk, publishFor(tc.svc, tc.sendUnhealthy)) {
				got = append(got, ep.Address+" "+ep.Health.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}
