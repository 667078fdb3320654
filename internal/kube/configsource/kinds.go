package configsource

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/kube"
)

// readVersion is the API version every kind is read at. Istio's CRDs serve
// v1 next to v1beta1 and v1alpha3 with one schema, and the Gateway API
// kinds Trellis reads are all served at v1, so objects written at any
// served version are seen here.
const readVersion = "v1"

// kind is one watched kind: its schema, its informer, how to take its spec
// out of a cached object, and how to validate it.
type kind struct {
	schema   schema.Schema
	informer cache.SharedIndexInformer
	// spec returns the object's metadata and its spec as a message. The
	// message may point into the cached object, which nobody mutates.
	spec     func(obj any) (metav1.Object, proto.Message, error)
	validate store.ValidateFunc
}

// istioSpec adapts a typed accessor to kind.spec.
func istioSpec[T kube.Object](get func(T) proto.Message) func(any) (metav1.Object, proto.Message, error) {
	return func(obj any) (metav1.Object, proto.Message, error) {
		t, ok := obj.(T)
		if !ok {
			var want T
			return nil, nil, fmt.Errorf("cached object is a %T, want %T", obj, want)
		}
		return t, get(t), nil
	}
}

// gatewaySpec adapts a Gateway API type: its spec (a Go struct) becomes a
// google.protobuf.Struct through its JSON form.
func gatewaySpec[T kube.Object](get func(T) any) func(any) (metav1.Object, proto.Message, error) {
	return func(obj any) (metav1.Object, proto.Message, error) {
		t, ok := obj.(T)
		if !ok {
			var want T
			return nil, nil, fmt.Errorf("cached object is a %T, want %T", obj, want)
		}
		js, err := json.Marshal(get(t))
		if err != nil {
			return t, nil, fmt.Errorf("encoding spec: %w", err)
		}
		var s structpb.Struct
		if err := protojson.Unmarshal(js, &s); err != nil {
			return t, nil, fmt.Errorf("converting spec: %w", err)
		}
		return t, &s, nil
	}
}

// acceptGatewayAPI is the validation of Gateway API kinds: the API
// server's schema and CEL rules are all there is until Trellis translates
// them (a later issue).
func acceptGatewayAPI(config.Config) ([]string, error) { return nil, nil }

// kinds requests an informer for every kind the source serves (so they
// must be asked for before the informers start) and returns them in the
// order of schemas.
func kinds(inf *kube.Informers, validate store.ValidateFunc) ([]kind, error) {
	net := inf.Istio().Networking().V1()
	sec := inf.Istio().Security().V1()
	gw := inf.GatewayAPI().Gateway().V1()
	informers := map[config.GroupKind]struct {
		informer cache.SharedIndexInformer
		spec     func(any) (metav1.Object, proto.Message, error)
	}{
		schema.VirtualService: {net.VirtualServices().Informer(),
			istioSpec(func(o *networkingv1.VirtualService) proto.Message { return &o.Spec })},
		schema.DestinationRule: {net.DestinationRules().Informer(),
			istioSpec(func(o *networkingv1.DestinationRule) proto.Message { return &o.Spec })},
		schema.Gateway: {net.Gateways().Informer(),
			istioSpec(func(o *networkingv1.Gateway) proto.Message { return &o.Spec })},
		schema.ServiceEntry: {net.ServiceEntries().Informer(),
			istioSpec(func(o *networkingv1.ServiceEntry) proto.Message { return &o.Spec })},
		schema.WorkloadEntry: {net.WorkloadEntries().Informer(),
			istioSpec(func(o *networkingv1.WorkloadEntry) proto.Message { return &o.Spec })},
		schema.WorkloadGroup: {net.WorkloadGroups().Informer(),
			istioSpec(func(o *networkingv1.WorkloadGroup) proto.Message { return &o.Spec })},
		schema.Sidecar: {net.Sidecars().Informer(),
			istioSpec(func(o *networkingv1.Sidecar) proto.Message { return &o.Spec })},
		schema.PeerAuthentication: {sec.PeerAuthentications().Informer(),
			istioSpec(func(o *securityv1.PeerAuthentication) proto.Message { return &o.Spec })},
		schema.AuthorizationPolicy: {sec.AuthorizationPolicies().Informer(),
			istioSpec(func(o *securityv1.AuthorizationPolicy) proto.Message { return &o.Spec })},
		schema.RequestAuthentication: {sec.RequestAuthentications().Informer(),
			istioSpec(func(o *securityv1.RequestAuthentication) proto.Message { return &o.Spec })},

		schema.KubernetesGateway: {gw.Gateways().Informer(),
			gatewaySpec(func(o *gatewayv1.Gateway) any { return &o.Spec })},
		schema.HTTPRoute: {gw.HTTPRoutes().Informer(),
			gatewaySpec(func(o *gatewayv1.HTTPRoute) any { return &o.Spec })},
		schema.GRPCRoute: {gw.GRPCRoutes().Informer(),
			gatewaySpec(func(o *gatewayv1.GRPCRoute) any { return &o.Spec })},
		schema.TCPRoute: {gw.TCPRoutes().Informer(),
			gatewaySpec(func(o *gatewayv1.TCPRoute) any { return &o.Spec })},
		schema.TLSRoute: {gw.TLSRoutes().Informer(),
			gatewaySpec(func(o *gatewayv1.TLSRoute) any { return &o.Spec })},
		schema.ReferenceGrant: {gw.ReferenceGrants().Informer(),
			gatewaySpec(func(o *gatewayv1.ReferenceGrant) any { return &o.Spec })},
	}
	var out []kind
	for _, sc := range Schemas().All() {
		k, ok := informers[sc.GroupKind]
		if !ok {
			return nil, fmt.Errorf("no informer for %s", sc.GroupKind)
		}
		v := validate
		if sc.Group == schema.GatewayAPIGroup {
			v = acceptGatewayAPI
		}
		out = append(out, kind{schema: sc, informer: k.informer, spec: k.spec, validate: v})
	}
	return out, nil
}

// Schemas returns the kinds the source serves: Istio's (schema.Istio) and
// the Gateway API's (schema.GatewayAPI).
func Schemas() schema.Set {
	return schema.NewSet(append(schema.Istio().All(), schema.GatewayAPI().All()...)...)
}

// toConfig builds the Config of a cached object read by k.
func (k *kind) toConfig(obj any) (config.Config, error) {
	m, spec, err := k.spec(obj)
	if err != nil {
		c := config.Config{Meta: config.Meta{Kind: k.schema.GroupKind, Version: readVersion}, Source: config.Source{File: SourceName}}
		if m != nil {
			c.Namespace, c.Name = m.GetNamespace(), m.GetName()
		}
		return c, err
	}
	return config.Config{
		Meta: config.Meta{
			Kind:              k.schema.GroupKind,
			Version:           readVersion,
			Name:              m.GetName(),
			Namespace:         m.GetNamespace(),
			Labels:            m.GetLabels(),
			Annotations:       m.GetAnnotations(),
			ResourceVersion:   m.GetResourceVersion(),
			Generation:        m.GetGeneration(),
			CreationTimestamp: m.GetCreationTimestamp().Time,
		},
		Spec:   spec,
		Source: config.Source{File: SourceName},
	}, nil
}
