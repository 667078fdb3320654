package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
)

// Aggregate merges several stores into one. Earlier stores take precedence:
// when two stores hold the same key, the object of the earlier one is
// served and the other is reported as a CodeDuplicate problem. Its events
// are those of the merged view (an object shadowed and later unshadowed is
// an update, not a delete and an add).
//
// Aggregate runs its children: call Run on the Aggregate only.
type Aggregate struct {
	stores  []Store
	schemas schema.Set
	d       *Dispatcher
	synced  atomic.Bool

	mu sync.Mutex
	// views[key][i] is store i's object for key, nil where it has none.
	views map[config.Key][]*config.Config
	index *Index // the merged view, one winner per key
}

var _ Store = (*Aggregate)(nil)

// syncPoll is how often Run checks whether the children have synced;
// Store.HasSynced offers no notification, as with client-go.
const syncPoll = 10 * time.Millisecond

// NewAggregate returns a store merging stores, highest precedence first.
// It registers its handlers on the children; it does no I/O.
func NewAggregate(stores ...Store) (*Aggregate, error) {
	if len(stores) == 0 {
		return nil, fmt.Errorf("aggregate store: no stores")
	}
	a := &Aggregate{
		stores: stores,
		d:      NewDispatcher(),
		views:  make(map[config.Key][]*config.Config),
		index:  NewIndex(),
	}
	seen := make(map[config.GroupKind]bool)
	var all []schema.Schema
	for i, s := range stores {
		if s == nil {
			return nil, fmt.Errorf("aggregate store: store %d is nil", i)
		}
		for _, sc := range s.Schemas().All() {
			if !seen[sc.GroupKind] {
				seen[sc.GroupKind] = true
				all = append(all, sc)
			}
		}
	}
	a.schemas = schema.NewSet(all...)
	for i, s := range stores {
		for _, sc := range s.Schemas().All() {
			s.RegisterEventHandler(sc.GroupKind, func(ev config.Event) { a.onEvent(i, ev) })
		}
	}
	return a, nil
}

// Schemas returns the union of the children's kinds.
func (a *Aggregate) Schemas() schema.Set { return a.schemas }

// Get returns the winning object for a key.
func (a *Aggregate) Get(kind config.GroupKind, namespace, name string) (config.Config, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index.Get(config.Key{Kind: kind, Namespace: namespace, Name: name})
}

// List returns the winning objects of a kind, sorted by namespace and name.
func (a *Aggregate) List(kind config.GroupKind, namespace string) []config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index.List(kind, namespace)
}

// RegisterEventHandler adds a handler for the merged view of kind.
func (a *Aggregate) RegisterEventHandler(kind config.GroupKind, h func(config.Event)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.d.Register(kind, h, a.index.List(kind, ""))
}

// HasSynced reports whether every child has synced and the merged events
// of their initial state have been delivered.
func (a *Aggregate) HasSynced() bool { return a.synced.Load() }

// Problems returns the children's problems plus one CodeDuplicate problem
// for each shadowed object.
func (a *Aggregate) Problems() []Problem {
	var out []Problem
	for _, s := range a.stores {
		out = append(out, s.Problems()...)
	}
	a.mu.Lock()
	for _, v := range a.views {
		var winner *config.Config
		for _, c := range v {
			if c == nil {
				continue
			}
			if winner == nil {
				winner = c
				continue
			}
			out = append(out, Problem{
				Code:    CodeDuplicate,
				Source:  c.Source,
				Key:     c.Key(),
				Message: fmt.Sprintf("shadowed by the definition in %s", winner.Source),
			})
		}
	}
	a.mu.Unlock()
	SortProblems(out)
	return out
}

// Run runs the children and delivers merged events until ctx is cancelled.
func (a *Aggregate) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, s := range a.stores {
		wg.Go(func() { s.Run(ctx) })
	}
	wg.Go(func() { a.d.Run(ctx) })

	t := time.NewTicker(syncPoll)
	defer t.Stop()
	for !a.childrenSynced() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	// Children deliver their initial events (to onEvent) before reporting
	// synced, so the barrier lands after the merged initial events.
	a.d.Barrier(func() { a.synced.Store(true) })
	<-ctx.Done()
}

func (a *Aggregate) childrenSynced() bool {
	for _, s := range a.stores {
		if !s.HasSynced() {
			return false
		}
	}
	return true
}

// onEvent folds an event of child i into the merged view. Children call it
// from their own goroutines; a.mu serialises them.
func (a *Aggregate) onEvent(i int, ev config.Event) {
	key := ev.Key()
	a.mu.Lock()
	defer a.mu.Unlock()
	v := a.views[key]
	if v == nil {
		v = make([]*config.Config, len(a.stores))
		a.views[key] = v
	}
	before := first(v)
	if ev.Type == config.EventDelete {
		v[i] = nil
	} else {
		c := *ev.New
		v[i] = &c
	}
	after := first(v)
	if after == nil {
		delete(a.views, key)
	}
	switch {
	case before == nil && after == nil:
	case before == nil:
		a.index.Set(*after)
		a.d.Publish(config.Event{Type: config.EventAdd, New: after})
	case after == nil:
		a.index.Delete(key)
		a.d.Publish(config.Event{Type: config.EventDelete, Old: before})
	default:
		a.index.Set(*after)
		if !before.Equal(*after) {
			a.d.Publish(config.Event{Type: config.EventUpdate, Old: before, New: after})
		}
	}
}

func first(v []*config.Config) *config.Config {
	for _, c := range v {
		if c != nil {
			return c
		}
	}
	return nil
}
