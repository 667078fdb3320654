package kube

import (
	"context"
	"errors"
	"time"

	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	gatewayinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
)

// Informers holds the shared informer factories of one Client, all with
// the Strip transform. Ask for every collection you need, then call Start
// once: a factory only starts the informers requested before Start (later
// requests are started by a later Start call).
//
// Informers is safe for concurrent use.
type Informers struct {
	kube    informers.SharedInformerFactory
	istio   istioinformers.SharedInformerFactory
	gateway gatewayinformers.SharedInformerFactory
}

// NewInformers returns the informer factories for c. resync is the
// informers' resync period (0: none; Trellis's handlers are level-based and
// do not need one).
func NewInformers(c *Client, resync time.Duration) *Informers {
	return &Informers{
		kube:    informers.NewSharedInformerFactoryWithOptions(c.Kube, resync, informers.WithTransform(Strip)),
		istio:   istioinformers.NewSharedInformerFactoryWithOptions(c.Istio, resync, istioinformers.WithTransform(Strip)),
		gateway: gatewayinformers.NewSharedInformerFactoryWithOptions(c.GatewayAPI, resync, gatewayinformers.WithTransform(Strip)),
	}
}

// Services is the cluster's Services.
func (i *Informers) Services() *Collection[*corev1.Service] {
	return newCollection[*corev1.Service](i.kube.Core().V1().Services().Informer())
}

// EndpointSlices is the cluster's discovery.k8s.io/v1 EndpointSlices.
func (i *Informers) EndpointSlices() *Collection[*discoveryv1.EndpointSlice] {
	return newCollection[*discoveryv1.EndpointSlice](i.kube.Discovery().V1().EndpointSlices().Informer())
}

// Pods is the cluster's Pods, stripped (see Strip).
func (i *Informers) Pods() *Collection[*corev1.Pod] {
	return newCollection[*corev1.Pod](i.kube.Core().V1().Pods().Informer())
}

// Namespaces is the cluster's Namespaces.
func (i *Informers) Namespaces() *Collection[*corev1.Namespace] {
	return newCollection[*corev1.Namespace](i.kube.Core().V1().Namespaces().Informer())
}

// Nodes is the cluster's Nodes, stripped (see Strip).
func (i *Informers) Nodes() *Collection[*corev1.Node] {
	return newCollection[*corev1.Node](i.kube.Core().V1().Nodes().Informer())
}

// Istio is the factory for Istio's CRD informers (for the CRD config
// source). Its informers use Strip too.
func (i *Informers) Istio() istioinformers.SharedInformerFactory { return i.istio }

// GatewayAPI is the factory for Gateway API informers. Its informers use
// Strip too.
func (i *Informers) GatewayAPI() gatewayinformers.SharedInformerFactory { return i.gateway }

// Start starts every informer requested so far; they stop when ctx is done.
// It does not block. Call Shutdown after ctx is done to wait for them.
func (i *Informers) Start(ctx context.Context) {
	i.kube.Start(ctx.Done())
	i.istio.Start(ctx.Done())
	i.gateway.Start(ctx.Done())
}

// WaitForSync blocks until every started informer has synced, or ctx is
// done (then it returns an error).
func (i *Informers) WaitForSync(ctx context.Context) error {
	ok := true
	for _, synced := range i.kube.WaitForCacheSync(ctx.Done()) {
		ok = ok && synced
	}
	for _, synced := range i.istio.WaitForCacheSync(ctx.Done()) {
		ok = ok && synced
	}
	for _, synced := range i.gateway.WaitForCacheSync(ctx.Done()) {
		ok = ok && synced
	}
	if !ok {
		return errors.New("kube informers: not synced before shutdown")
	}
	return nil
}

// Shutdown waits for every started informer to return. The context given
// to Start must be done first, or Shutdown blocks.
func (i *Informers) Shutdown() {
	i.kube.Shutdown()
	i.istio.Shutdown()
	i.gateway.Shutdown()
}

// WaitFor blocks until every sync function reports true or ctx is done.
func WaitFor(ctx context.Context, synced ...func() bool) bool {
	fns := make([]cache.InformerSynced, len(synced))
	for n, f := range synced {
		fns[n] = f
	}
	return cache.WaitForCacheSync(ctx.Done(), fns...)
}
