package serviceentry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry"
)

// Config configures a Registry.
type Config struct {
	// Store serves ServiceEntry, WorkloadEntry and WorkloadGroup objects.
	// Required. The caller runs it.
	Store store.Store
	// Logger receives changes at debug level; nil discards.
	Logger *slog.Logger
}

// Registry is a registry.Registry over the ServiceEntries, WorkloadEntries
// and WorkloadGroups of a store. It is safe for concurrent use.
type Registry struct {
	store  store.Store
	log    *slog.Logger
	state  atomic.Pointer[state]
	synced atomic.Bool

	// mu serialises writers: it guards inputs and is held while a change is
	// published and handlers run.
	mu     sync.Mutex
	inputs map[string]inputs // by namespace
	// live is set once resync has built the initial state: from then on
	// each event rebuilds its namespace. Before, events only fold into
	// inputs, and resync builds every namespace once (a directory of
	// thousands of objects loads in one build, not one per object).
	live bool

	hmu      sync.Mutex
	handlers []func(registry.Change)
}

// state is one published, immutable view of the registry.
type state struct {
	services []*model.Service // sorted by host, then namespace
	byNS     map[string]*nsState
}

var _ registry.Registry = (*Registry)(nil)

// kinds are the store kinds the registry reads.
var kinds = [...]config.GroupKind{schema.ServiceEntry, schema.WorkloadEntry, schema.WorkloadGroup}

// syncPoll is how often Run checks Store.HasSynced, which has no
// notification.
const syncPoll = 10 * time.Millisecond

// New returns a registry reading cfg.Store. It registers its event handlers
// on the store (no I/O); objects already in the store arrive as adds.
func New(cfg Config) (*Registry, error) {
	if cfg.Store == nil {
		return nil, errors.New("serviceentry registry: Store is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Registry{store: cfg.Store, log: log, inputs: map[string]inputs{}}
	r.state.Store(&state{byNS: map[string]*nsState{}})
	for _, k := range kinds {
		r.store.RegisterEventHandler(k, r.onEvent)
	}
	return r, nil
}

// Services returns every service, sorted by host then namespace. Shared;
// do not mutate.
func (r *Registry) Services() []*model.Service { return r.state.Load().services }

// Endpoints returns the endpoints of a service, sorted. Shared; do not
// mutate.
func (r *Registry) Endpoints(key model.ServiceKey) []*model.Endpoint {
	ns := r.state.Load().byNS[key.Namespace]
	if ns == nil {
		return nil
	}
	return ns.endpoints[key]
}

// Service returns one service.
func (r *Registry) Service(key model.ServiceKey) (*model.Service, bool) {
	ns := r.state.Load().byNS[key.Namespace]
	if ns == nil {
		return nil, false
	}
	svc, ok := ns.services[key]
	return svc, ok
}

// RegisterHandler adds h, called serially after each change from the
// store's event goroutine. Handlers should only enqueue work.
func (r *Registry) RegisterHandler(h func(registry.Change)) {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	r.handlers = append(r.handlers[:len(r.handlers):len(r.handlers)], h)
}

// Run waits for the store to sync, reconciles with its full listing (so
// that a registry created after the store started loses nothing), marks
// the registry synced and blocks until ctx is done. It starts no
// goroutines.
func (r *Registry) Run(ctx context.Context) {
	t := time.NewTicker(syncPoll)
	defer t.Stop()
	for !r.store.HasSynced() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	r.resync()
	r.synced.Store(true)
	<-ctx.Done()
}

// HasSynced reports whether Run has seen the store's initial state.
func (r *Registry) HasSynced() bool { return r.synced.Load() }

// resync replaces the inputs with the store's listing and rebuilds every
// namespace whose inputs differ. It lists under mu, so no event can slip
// in between the listing and the replacement; events queued before the
// listing and delivered after it may briefly re-apply an older version,
// and the last queued event for each object restores the listed one.
// Lock order is mu, then the store's lock: store handlers are called
// holding no store lock, so this cannot deadlock.
func (r *Registry) resync() {
	r.mu.Lock()
	defer r.mu.Unlock()
	fresh := map[string]inputs{}
	for _, k := range kinds {
		for _, c := range r.store.List(k, "") {
			fresh[c.Namespace] = fresh[c.Namespace].with(c)
		}
	}
	changed := map[string]bool{}
	for ns := range fresh {
		changed[ns] = true
	}
	for ns := range r.inputs {
		changed[ns] = true
	}
	r.inputs = fresh
	r.live = true
	r.rebuild(slices.Sorted(maps.Keys(changed))...)
}

// onEvent folds one store event into the inputs and rebuilds its
// namespace.
func (r *Registry) onEvent(ev config.Event) {
	key := ev.Key()
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.inputs[key.Namespace]
	if ev.Type == config.EventDelete {
		in = in.without(key)
	} else {
		in = in.with(*ev.New)
	}
	if in.empty() {
		delete(r.inputs, key.Namespace)
	} else {
		r.inputs[key.Namespace] = in
	}
	r.log.Debug("serviceentry registry: event", "type", ev.Type.String(), "key", key.String())
	if r.live {
		r.rebuild(key.Namespace)
	}
}

// with returns in holding c. The maps are updated in place: inputs are
// only read by buildNamespace, under r.mu, like every write.
func (in inputs) with(c config.Config) inputs {
	switch c.Kind {
	case schema.ServiceEntry:
		in.serviceEntries = put(in.serviceEntries, c)
	case schema.WorkloadEntry:
		in.workloadEntries = put(in.workloadEntries, c)
	case schema.WorkloadGroup:
		in.workloadGroups = put(in.workloadGroups, c)
	}
	return in
}

// without returns in lacking key (in place, as with).
func (in inputs) without(key config.Key) inputs {
	switch key.Kind {
	case schema.ServiceEntry:
		in.serviceEntries = drop(in.serviceEntries, key.Name)
	case schema.WorkloadEntry:
		in.workloadEntries = drop(in.workloadEntries, key.Name)
	case schema.WorkloadGroup:
		in.workloadGroups = drop(in.workloadGroups, key.Name)
	}
	return in
}

func put(m map[string]config.Config, c config.Config) map[string]config.Config {
	if m == nil {
		m = map[string]config.Config{}
	}
	m[c.Name] = c
	return m
}

func drop(m map[string]config.Config, name string) map[string]config.Config {
	delete(m, name)
	return m
}

// reuse makes cur point at old's values where they are equal, so that an
// unchanged service or endpoint list keeps its identity across rebuilds.
func reuse(old, cur *nsState) {
	if old == nil {
		return
	}
	for k, svc := range cur.services {
		if o := old.services[k]; o != nil && serviceEqual(o, svc) {
			cur.services[k] = o
		}
		if o := old.endpoints[k]; o != nil && endpointsEqual(o, cur.endpoints[k]) {
			cur.endpoints[k] = o
		}
	}
}

// rebuild recomputes the namespaces, publishes the new state and notifies
// handlers. r.mu must be held.
func (r *Registry) rebuild(namespaces ...string) {
	old := r.state.Load()
	next := &state{byNS: maps.Clone(old.byNS)}
	var services, endpointsOnly []model.ServiceKey
	for _, ns := range namespaces {
		var cur *nsState
		if in, ok := r.inputs[ns]; ok {
			cur = buildNamespace(in)
			reuse(old.byNS[ns], cur)
		}
		s, e := diff(old.byNS[ns], cur)
		services = append(services, s...)
		endpointsOnly = append(endpointsOnly, e...)
		if cur == nil || len(cur.services) == 0 {
			delete(next.byNS, ns)
		} else {
			next.byNS[ns] = cur
		}
	}
	if len(services) == 0 && len(endpointsOnly) == 0 {
		return
	}
	if len(services) > 0 {
		next.services = make([]*model.Service, 0, len(old.services)+len(services))
		for _, st := range next.byNS {
			for _, svc := range st.services {
				next.services = append(next.services, svc)
			}
		}
		model.SortServices(next.services)
	} else {
		next.services = old.services
	}
	r.state.Store(next)

	sortKeys(services)
	sortKeys(endpointsOnly)
	r.hmu.Lock()
	hs := r.handlers
	r.hmu.Unlock()
	for _, c := range []registry.Change{
		{Services: services},
		{Services: endpointsOnly, EndpointsOnly: true},
	} {
		if len(c.Services) == 0 {
			continue
		}
		r.log.Debug("serviceentry registry: change", "services", fmt.Sprint(c.Services), "endpointsOnly", c.EndpointsOnly)
		for _, h := range hs {
			h(registry.Change{Services: slices.Clone(c.Services), EndpointsOnly: c.EndpointsOnly})
		}
	}
}
