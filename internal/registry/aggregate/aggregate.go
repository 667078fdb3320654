package aggregate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry"
)

// Registry is a registry.Registry over several registries.
type Registry struct {
	children []registry.Registry

	// mu makes handlers serial across children, as registry.Registry
	// promises: children call them from their own goroutines.
	mu sync.Mutex
}

var _ registry.Registry = (*Registry)(nil)

// New returns a registry over children, highest precedence first.
func New(children ...registry.Registry) (*Registry, error) {
	if len(children) == 0 {
		return nil, errors.New("aggregate registry: no registries")
	}
	for i, c := range children {
		if c == nil {
			return nil, fmt.Errorf("aggregate registry: registry %d is nil", i)
		}
	}
	return &Registry{children: append([]registry.Registry(nil), children...)}, nil
}

// Services returns the services of every child, one per key (the first
// child's wins), sorted by host then namespace. The slice is new; the
// services are shared.
func (r *Registry) Services() []*model.Service {
	if len(r.children) == 1 {
		return r.children[0].Services()
	}
	seen := map[model.ServiceKey]bool{}
	var out []*model.Service
	for _, c := range r.children {
		for _, svc := range c.Services() {
			if k := svc.Key(); !seen[k] {
				seen[k] = true
				out = append(out, svc)
			}
		}
	}
	model.SortServices(out)
	return out
}

// Endpoints returns the endpoints of key from the first child that
// declares the service.
func (r *Registry) Endpoints(key model.ServiceKey) []*model.Endpoint {
	if c := r.owner(key); c != nil {
		return c.Endpoints(key)
	}
	return nil
}

func (r *Registry) owner(key model.ServiceKey) registry.Registry {
	if len(r.children) == 1 {
		return r.children[0]
	}
	for _, c := range r.children {
		if declares(c.Services(), key) {
			return c
		}
	}
	return nil
}

// declares binary-searches services, which registry.Registry sorts by host
// then namespace.
func declares(services []*model.Service, key model.ServiceKey) bool {
	_, found := slices.BinarySearchFunc(services, key, func(svc *model.Service, k model.ServiceKey) int {
		if c := strings.Compare(svc.Hostname, k.Hostname); c != 0 {
			return c
		}
		return strings.Compare(svc.Namespace, k.Namespace)
	})
	return found
}

// RegisterHandler adds h to every child. Calls are serialised across
// children.
func (r *Registry) RegisterHandler(h func(registry.Change)) {
	for _, c := range r.children {
		c.RegisterHandler(func(ch registry.Change) {
			r.mu.Lock()
			defer r.mu.Unlock()
			h(ch)
		})
	}
}

// Run runs every child until ctx is done and returns when all have
// returned.
func (r *Registry) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range r.children {
		wg.Go(func() { c.Run(ctx) })
	}
	wg.Wait()
}

// HasSynced reports whether every child has synced.
func (r *Registry) HasSynced() bool {
	for _, c := range r.children {
		if !c.HasSynced() {
			return false
		}
	}
	return true
}
