package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry"
)

// Config configures a Registry.
type Config struct {
	// Informers supplies the cluster's objects (required). The registry
	// asks for its collections in New and starts them in Run; the caller
	// calls Informers.Shutdown after Run has returned.
	Informers *kube.Informers
	// DomainSuffix is the cluster's DNS domain (default "cluster.local").
	DomainSuffix string
	// SystemNamespace is the control plane's namespace, whose
	// topology.istio.io/network label names the cluster's default network
	// (default "istio-system").
	SystemNamespace string
	// SendUnhealthyEndpoints publishes not-ready endpoints as UNHEALTHY
	// instead of leaving them out (Istio's PILOT_SEND_UNHEALTHY_ENDPOINTS).
	SendUnhealthyEndpoints bool
	// Logger receives debug messages (default: discard).
	Logger *slog.Logger
}

// Registry is the registry.Registry of a Kubernetes cluster.
type Registry struct {
	cfg        Config
	services   *kube.Collection[*corev1.Service]
	slices     *kube.Collection[*discoveryv1.EndpointSlice]
	pods       *kube.Collection[*corev1.Pod]
	namespaces *kube.Collection[*corev1.Namespace]
	nodes      *kube.Collection[*corev1.Node]

	// dirty is written by informer handlers and drained by Run's loop.
	dirtyMu  sync.Mutex
	dirty    map[string]bool // namespaces to rebuild
	dirtyAll bool
	wake     chan struct{} // capacity 1

	// byNamespace is owned by Run's goroutine.
	byNamespace map[string]*nsState

	state  atomic.Pointer[state]
	synced atomic.Bool

	handlersMu sync.Mutex
	handlers   []func(registry.Change)
}

var _ registry.Registry = (*Registry)(nil)

// nsState is the converted state of one namespace.
type nsState struct {
	services  map[model.ServiceKey]*model.Service
	endpoints map[model.ServiceKey][]*model.Endpoint
}

// state is what readers see; immutable once published.
type state struct {
	services  []*model.Service
	endpoints map[model.ServiceKey][]*model.Endpoint
}

// sliceServiceIndex indexes EndpointSlices by "<namespace>/<service>".
const sliceServiceIndex = "service"

// New returns a registry over the cluster behind cfg.Informers. It
// registers its informers and handlers; it does no I/O.
func New(cfg Config) (*Registry, error) {
	if cfg.Informers == nil {
		return nil, errors.New("kube registry: no informers")
	}
	if cfg.DomainSuffix == "" {
		cfg.DomainSuffix = "cluster.local"
	}
	if cfg.SystemNamespace == "" {
		cfg.SystemNamespace = "istio-system"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		cfg:         cfg,
		services:    cfg.Informers.Services(),
		slices:      cfg.Informers.EndpointSlices(),
		pods:        cfg.Informers.Pods(),
		namespaces:  cfg.Informers.Namespaces(),
		nodes:       cfg.Informers.Nodes(),
		dirty:       map[string]bool{},
		wake:        make(chan struct{}, 1),
		byNamespace: map[string]*nsState{},
	}
	r.state.Store(&state{endpoints: map[model.ServiceKey][]*model.Endpoint{}})
	err := r.slices.AddIndex(sliceServiceIndex, func(es *discoveryv1.EndpointSlice) []string {
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			return []string{es.Namespace + "/" + svc}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kube registry: %w", err)
	}
	errs := []error{
		r.services.AddHandler(func(e kube.Event[*corev1.Service]) { r.markDirty(e.Obj.Namespace) }),
		r.slices.AddHandler(func(e kube.Event[*discoveryv1.EndpointSlice]) { r.markDirty(e.Obj.Namespace) }),
		r.pods.AddHandler(func(e kube.Event[*corev1.Pod]) {
			if e.Type != kube.Updated || podChanged(e.Old, e.Obj) {
				r.markDirty(e.Obj.Namespace)
			}
		}),
		r.nodes.AddHandler(func(e kube.Event[*corev1.Node]) {
			if e.Type != kube.Updated || !maps.Equal(e.Old.Labels, e.Obj.Labels) {
				r.markAllDirty()
			}
		}),
		r.namespaces.AddHandler(func(e kube.Event[*corev1.Namespace]) {
			if e.Obj.Name != cfg.SystemNamespace {
				return
			}
			if e.Type != kube.Updated || e.Old.Labels[labelNetwork] != e.Obj.Labels[labelNetwork] {
				r.markAllDirty()
			}
		}),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kube registry: %w", err)
	}
	return r, nil
}

// podChanged reports whether an update changes what endpoints take from a
// Pod (readiness comes from EndpointSlices, not from here).
func podChanged(old, cur *corev1.Pod) bool {
	return !maps.Equal(old.Labels, cur.Labels) ||
		old.Spec.ServiceAccountName != cur.Spec.ServiceAccountName ||
		old.Spec.NodeName != cur.Spec.NodeName ||
		!reflect.DeepEqual(old.OwnerReferences, cur.OwnerReferences)
}

func (r *Registry) markDirty(ns string) {
	r.dirtyMu.Lock()
	r.dirty[ns] = true
	r.dirtyMu.Unlock()
	r.poke()
}

func (r *Registry) markAllDirty() {
	r.dirtyMu.Lock()
	r.dirtyAll = true
	r.dirtyMu.Unlock()
	r.poke()
}

func (r *Registry) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Services returns every Kubernetes service, sorted by host then
// namespace. The slice and the services are shared: do not mutate.
func (r *Registry) Services() []*model.Service { return r.state.Load().services }

// Endpoints returns the published endpoints of a service.
func (r *Registry) Endpoints(key model.ServiceKey) []*model.Endpoint {
	return r.state.Load().endpoints[key]
}

// RegisterHandler adds h, called serially from Run's goroutine after each
// change.
func (r *Registry) RegisterHandler(h func(registry.Change)) {
	r.handlersMu.Lock()
	r.handlers = append(r.handlers, h)
	r.handlersMu.Unlock()
}

// HasSynced reports whether the registry reflects the informers' initial
// listing.
func (r *Registry) HasSynced() bool { return r.synced.Load() }

// Run starts the informers, waits for them to sync, builds the initial
// state and then applies changes until ctx is done. Changes that arrive
// together are coalesced: each namespace touched is rebuilt once.
func (r *Registry) Run(ctx context.Context) {
	r.cfg.Informers.Start(ctx)
	if !kube.WaitFor(ctx, r.services.HasSynced, r.slices.HasSynced, r.pods.HasSynced,
		r.namespaces.HasSynced, r.nodes.HasSynced) {
		return
	}
	r.markAllDirty()
	r.apply()
	r.synced.Store(true)
	r.cfg.Logger.Debug("kube registry synced", "services", len(r.Services()))
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
			r.apply()
		}
	}
}

// apply rebuilds the dirty namespaces, publishes the new state and tells
// the handlers what changed.
func (r *Registry) apply() {
	r.dirtyMu.Lock()
	dirty, all := r.dirty, r.dirtyAll
	r.dirty, r.dirtyAll = map[string]bool{}, false
	r.dirtyMu.Unlock()
	if all {
		for ns := range r.byNamespace {
			dirty[ns] = true
		}
		for _, svc := range r.services.List() {
			dirty[svc.Namespace] = true
		}
	}
	if len(dirty) == 0 {
		return
	}
	lk := lookup{
		pod: func(ns, name string) *corev1.Pod {
			p, _ := r.pods.Get(ns, name)
			return p
		},
		node: func(name string) *corev1.Node {
			if name == "" {
				return nil
			}
			n, _ := r.nodes.Get("", name)
			return n
		},
	}
	if sys, ok := r.namespaces.Get("", r.cfg.SystemNamespace); ok {
		lk.network = sys.Labels[labelNetwork]
	}

	var changed, epsChanged []model.ServiceKey
	for _, ns := range slices.Sorted(maps.Keys(dirty)) {
		next := r.buildNamespace(ns, lk)
		c, e := diff(r.byNamespace[ns], next)
		changed = append(changed, c...)
		epsChanged = append(epsChanged, e...)
		if len(next.services) == 0 {
			delete(r.byNamespace, ns)
		} else {
			r.byNamespace[ns] = next
		}
	}
	if len(changed) == 0 && len(epsChanged) == 0 {
		return
	}
	r.publish()
	r.handlersMu.Lock()
	hs := slices.Clone(r.handlers)
	r.handlersMu.Unlock()
	for _, h := range hs {
		if len(changed) > 0 {
			h(registry.Change{Services: changed})
		}
		if len(epsChanged) > 0 {
			h(registry.Change{Services: epsChanged, EndpointsOnly: true})
		}
	}
}

// buildNamespace converts one namespace's Services and their endpoints.
func (r *Registry) buildNamespace(ns string, lk lookup) *nsState {
	out := &nsState{
		services:  map[model.ServiceKey]*model.Service{},
		endpoints: map[model.ServiceKey][]*model.Endpoint{},
	}
	for _, svc := range r.services.ListNamespace(ns) {
		ms := ConvertService(svc, r.cfg.DomainSuffix)
		key := ms.Key()
		out.services[key] = ms
		if ms.Resolution == model.DNSLB {
			// ExternalName: the proxy resolves the external name.
			out.endpoints[key] = []*model.Endpoint{{Address: svc.Spec.ExternalName, Namespace: ns, TLSMode: "disabled"}}
			continue
		}
		eslices := r.slices.ByIndex(sliceServiceIndex, ns+"/"+svc.Name)
		slices.SortFunc(eslices, func(a, b *discoveryv1.EndpointSlice) int { return strings.Compare(a.Name, b.Name) })
		if eps := convertEndpoints(eslices, lk, publishFor(svc, r.cfg.SendUnhealthyEndpoints)); len(eps) > 0 {
			out.endpoints[key] = eps
		}
	}
	return out
}

// diff compares a namespace's previous and next state. It returns the keys
// whose service was added, removed or changed, and the keys whose service
// is unchanged but whose endpoints changed. Unchanged values in next are
// replaced by the previous pointers, so readers can compare by identity.
func diff(prev, next *nsState) (changed, epsChanged []model.ServiceKey) {
	if prev == nil {
		prev = &nsState{}
	}
	for key, svc := range next.services {
		old, ok := prev.services[key]
		switch {
		case !ok || !reflect.DeepEqual(old, svc):
			changed = append(changed, key)
		default:
			next.services[key] = old
			if !reflect.DeepEqual(prev.endpoints[key], next.endpoints[key]) {
				epsChanged = append(epsChanged, key)
			} else if eps, ok := prev.endpoints[key]; ok {
				next.endpoints[key] = eps
			}
		}
	}
	for key := range prev.services {
		if _, ok := next.services[key]; !ok {
			changed = append(changed, key)
		}
	}
	sortKeys(changed)
	sortKeys(epsChanged)
	return changed, epsChanged
}

func sortKeys(keys []model.ServiceKey) {
	slices.SortFunc(keys, func(a, b model.ServiceKey) int {
		return cmp.Or(strings.Compare(a.Hostname, b.Hostname), strings.Compare(a.Namespace, b.Namespace))
	})
}

// publish assembles the namespaces into a new immutable state.
func (r *Registry) publish() {
	st := &state{endpoints: map[model.ServiceKey][]*model.Endpoint{}}
	for _, ns := range r.byNamespace {
		for key, svc := range ns.services {
			st.services = append(st.services, svc)
			if eps := ns.endpoints[key]; len(eps) > 0 {
				st.endpoints[key] = eps
			}
		}
	}
	model.SortServices(st.services)
	r.state.Store(st)
}
