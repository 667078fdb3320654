package status

import (
	analysisv1alpha1 "istio.io/api/analysis/v1alpha1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/trellismesh/trellis/internal/config"
	cschema "github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube"
)

// kind is one Istio kind whose objects get status: its informer (shared
// with the CRD config source) and its resource for patches.
type kind struct {
	gk       config.GroupKind
	gvr      schema.GroupVersionResource
	informer cache.SharedIndexInformer
}

// validationMessages is what Istio's two status types (IstioStatus and
// ServiceEntryStatus) have in common here.
type validationMessages interface {
	GetValidationMessages() []*analysisv1alpha1.AnalysisMessageBase
}

// current returns a cached object's metadata and its status's messages.
func current(obj any) (metav1.Object, []*analysisv1alpha1.AnalysisMessageBase, bool) {
	var m metav1.Object
	var st validationMessages
	switch o := obj.(type) {
	case *networkingv1.VirtualService:
		m, st = o, &o.Status
	case *networkingv1.DestinationRule:
		m, st = o, &o.Status
	case *networkingv1.Gateway:
		m, st = o, &o.Status
	case *networkingv1.ServiceEntry:
		m, st = o, &o.Status
	case *networkingv1.WorkloadEntry:
		m, st = o, &o.Status
	case *networkingv1.WorkloadGroup:
		m, st = o, &o.Status
	case *networkingv1.Sidecar:
		m, st = o, &o.Status
	case *securityv1.PeerAuthentication:
		m, st = o, &o.Status
	case *securityv1.AuthorizationPolicy:
		m, st = o, &o.Status
	case *securityv1.RequestAuthentication:
		m, st = o, &o.Status
	default:
		return nil, nil, false
	}
	return m, st.GetValidationMessages(), true
}

// kinds requests the informers of every Istio kind (no I/O).
func kinds(inf *kube.Informers) []kind {
	net := inf.Istio().Networking().V1()
	sec := inf.Istio().Security().V1()
	informers := map[config.GroupKind]cache.SharedIndexInformer{
		cschema.VirtualService:        net.VirtualServices().Informer(),
		cschema.DestinationRule:       net.DestinationRules().Informer(),
		cschema.Gateway:               net.Gateways().Informer(),
		cschema.ServiceEntry:          net.ServiceEntries().Informer(),
		cschema.WorkloadEntry:         net.WorkloadEntries().Informer(),
		cschema.WorkloadGroup:         net.WorkloadGroups().Informer(),
		cschema.Sidecar:               net.Sidecars().Informer(),
		cschema.PeerAuthentication:    sec.PeerAuthentications().Informer(),
		cschema.AuthorizationPolicy:   sec.AuthorizationPolicies().Informer(),
		cschema.RequestAuthentication: sec.RequestAuthentications().Informer(),
	}
	var out []kind
	for _, sc := range cschema.Istio().All() {
		inf, ok := informers[sc.GroupKind]
		if !ok {
			continue // a kind the cluster source does not read
		}
		out = append(out, kind{
			gk:       sc.GroupKind,
			gvr:      schema.GroupVersionResource{Group: sc.Group, Version: "v1", Resource: sc.Plural},
			informer: inf,
		})
	}
	return out
}
