package configsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/tools/cache"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/kube"
)

// SourceName is the Source.File of every object (and problem) of the
// source: problems then read "kubernetes: VirtualService ns/name: field:
// reason".
const SourceName = "kubernetes"

// Config configures a Source.
type Config struct {
	// Informers supplies the cluster's objects (required). New asks for
	// the informers of every kind; Run starts them; the caller calls
	// Informers.Shutdown once Run has returned.
	Informers *kube.Informers
	// Validate checks Istio objects (required): ingest.Validate, the file
	// source's validators. Gateway API objects are not validated by
	// Trellis yet: the API server's schema and rules are all they get.
	Validate store.ValidateFunc
	// Logger receives rejected objects and resolved problems (default:
	// discard).
	Logger *slog.Logger
}

// Source is a store.Store over the cluster's Istio and Gateway API
// objects. It is safe for concurrent use.
type Source struct {
	kinds   []kind
	schemas schema.Set
	log     *slog.Logger
	inf     *kube.Informers
	d       *store.Dispatcher
	synced  atomic.Bool
	running atomic.Bool

	// regs are the informer handler registrations, to know when each has
	// seen its informer's initial listing.
	regs []cache.ResourceEventHandlerRegistration

	// dirty is written by informer handlers and drained by Run's loop.
	dirtyMu sync.Mutex
	dirty   map[item]bool
	wake    chan struct{} // capacity 1

	mu       sync.Mutex
	index    *store.Index                   // the objects in force
	problems map[config.Key][]store.Problem // per object: its rejection or warnings
}

// item is one object to look at again: kinds[kind], cache key ns/name.
type item struct {
	kind int
	key  string
}

var _ store.Store = (*Source)(nil)

// New returns a source over cfg.Informers. It requests the informers and
// registers their handlers; it does no I/O.
func New(cfg Config) (*Source, error) {
	if cfg.Informers == nil {
		return nil, errors.New("kube config source: no informers")
	}
	if cfg.Validate == nil {
		return nil, errors.New("kube config source: Validate is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ks, err := kinds(cfg.Informers, cfg.Validate)
	if err != nil {
		return nil, fmt.Errorf("kube config source: %w", err)
	}
	s := &Source{
		kinds:    ks,
		schemas:  Schemas(),
		log:      cfg.Logger,
		inf:      cfg.Informers,
		d:        store.NewDispatcher(),
		dirty:    map[item]bool{},
		wake:     make(chan struct{}, 1),
		index:    store.NewIndex(),
		problems: map[config.Key][]store.Problem{},
	}
	for i := range ks {
		mark := func(obj any) {
			key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
			if err != nil {
				return
			}
			s.markDirty(item{kind: i, key: key})
		}
		reg, err := ks[i].informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    mark,
			UpdateFunc: func(_, obj any) { mark(obj) },
			DeleteFunc: mark,
		})
		if err != nil {
			return nil, fmt.Errorf("kube config source: %s handler: %w", ks[i].schema.GroupKind, err)
		}
		s.regs = append(s.regs, reg)
	}
	return s, nil
}

func (s *Source) markDirty(it item) {
	s.dirtyMu.Lock()
	s.dirty[it] = true
	s.dirtyMu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Schemas returns the Istio and Gateway API kinds.
func (s *Source) Schemas() schema.Set { return s.schemas }

// Get returns the object in force for a key.
func (s *Source) Get(kind config.GroupKind, namespace, name string) (config.Config, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.Get(config.Key{Kind: kind, Namespace: namespace, Name: name})
}

// List returns the objects in force of a kind in namespace ("" for all),
// sorted by namespace and name.
func (s *Source) List(kind config.GroupKind, namespace string) []config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.List(kind, namespace)
}

// RegisterEventHandler adds a handler; see store.Store.
func (s *Source) RegisterEventHandler(kind config.GroupKind, h func(config.Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d.Register(kind, h, s.index.List(kind, ""))
}

// HasSynced reports whether the informers' initial listing has been
// admitted and its events delivered.
func (s *Source) HasSynced() bool { return s.synced.Load() }

// Problems returns the rejected objects and the validation warnings of
// the objects in force.
func (s *Source) Problems() []store.Problem {
	s.mu.Lock()
	var out []store.Problem
	for _, ps := range s.problems {
		out = append(out, ps...)
	}
	s.mu.Unlock()
	store.SortProblems(out)
	return out
}

// Run starts the informers, waits until the handlers have seen their
// initial listing, admits it, reports HasSynced and then follows changes
// until ctx is done. It returns once its own goroutines have stopped; the
// informers stop with ctx (Informers.Shutdown waits for them).
func (s *Source) Run(ctx context.Context) {
	if !s.running.CompareAndSwap(false, true) {
		s.log.Error("kube config source: Run called twice")
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.d.Run(ctx) })

	s.inf.Start(ctx)
	synced := make([]func() bool, len(s.regs))
	for i, r := range s.regs {
		synced[i] = r.HasSynced
	}
	if !kube.WaitFor(ctx, synced...) {
		return
	}
	s.apply()
	s.d.Barrier(func() { s.synced.Store(true) })
	s.mu.Lock()
	n := s.index.Len()
	s.mu.Unlock()
	s.log.Debug("kube config source synced", "objects", n)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			s.apply()
		}
	}
}

// apply looks again at every dirty object, in kind then key order.
func (s *Source) apply() {
	s.dirtyMu.Lock()
	dirty := s.dirty
	s.dirty = map[item]bool{}
	s.dirtyMu.Unlock()
	items := slices.SortedFunc(maps.Keys(dirty), func(a, b item) int {
		if a.kind != b.kind {
			return a.kind - b.kind
		}
		return strings.Compare(a.key, b.key)
	})
	for _, it := range items {
		s.reconcile(&s.kinds[it.kind], it.key)
	}
}

// reconcile makes the state of one object agree with the cache: a deleted
// object is removed; a valid one is put in force; an invalid one is
// reported and its last valid version (if any) stays in force.
func (s *Source) reconcile(k *kind, cacheKey string) {
	ns, name, err := cache.SplitMetaNamespaceKey(cacheKey)
	if err != nil {
		return
	}
	key := config.Key{Kind: k.schema.GroupKind, Namespace: ns, Name: name}
	obj, exists, err := k.informer.GetStore().GetByKey(cacheKey)
	if err != nil || !exists {
		s.remove(key)
		return
	}
	c, err := k.toConfig(obj)
	var problems []store.Problem
	ok := false
	if err != nil {
		problems = []store.Problem{{Code: store.CodeDecode, Source: c.Source, Key: key, Field: "spec", Message: err.Error()}}
	} else {
		problems, ok = store.Check(s.schemas, k.validate, c)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	prev, had := s.index.Get(key)
	if len(problems) == 0 {
		delete(s.problems, key)
	} else {
		s.problems[key] = problems
	}
	if !ok {
		for _, p := range problems {
			if p.Severity == store.SeverityError {
				s.log.Warn("configuration rejected", "code", string(p.Code), "problem", p.Error(),
					"resourceVersion", c.ResourceVersion, "keeping", keeping(had, prev))
			}
		}
		return
	}
	s.index.Set(c)
	switch {
	case !had:
		s.d.Publish(config.Event{Type: config.EventAdd, New: &c})
	case !prev.Equal(c):
		s.d.Publish(config.Event{Type: config.EventUpdate, Old: &prev, New: &c})
	}
}

// keeping describes what stays in force after a rejection, for the log.
func keeping(had bool, prev config.Config) string {
	if !had {
		return "nothing"
	}
	return "resourceVersion " + prev.ResourceVersion
}

func (s *Source) remove(key config.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.problems, key)
	prev, had := s.index.Get(key)
	if !had {
		return
	}
	s.index.Delete(key)
	s.d.Publish(config.Event{Type: config.EventDelete, Old: &prev})
}
