package kube

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
)

// Object is what a Collection holds: a pointer to a Kubernetes API type
// such as *corev1.Pod.
type Object interface {
	runtime.Object
	metav1.Object
}

// EventType says what happened to an object.
type EventType int

// Event types.
const (
	Added EventType = iota
	Updated
	Deleted
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "add"
	case Updated:
		return "update"
	case Deleted:
		return "delete"
	}
	return "unknown"
}

// Event is one change to an object. Old is set for updates only. For a
// delete, Obj is the last state the cache knew (possibly older than the
// deletion, when the watch missed it).
type Event[T Object] struct {
	Type EventType
	Old  T
	Obj  T
}

// Collection is a typed, read-only view of one informer's cache. Objects
// it returns are shared with the cache: callers must not mutate them.
type Collection[T Object] struct {
	informer cache.SharedIndexInformer
}

func newCollection[T Object](inf cache.SharedIndexInformer) *Collection[T] {
	return &Collection[T]{informer: inf}
}

// List returns every cached object, in no particular order.
func (c *Collection[T]) List() []T {
	return typed[T](c.informer.GetStore().List())
}

// ListNamespace returns the cached objects of one namespace.
func (c *Collection[T]) ListNamespace(ns string) []T {
	objs, err := c.informer.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
	if err != nil {
		// The namespace index is installed by every factory informer; its
		// absence is a programming error.
		panic(fmt.Sprintf("kube: collection without namespace index: %v", err))
	}
	return typed[T](objs)
}

// Get returns the object ns/name (name alone for cluster-scoped kinds).
func (c *Collection[T]) Get(ns, name string) (T, bool) {
	key := name
	if ns != "" {
		key = ns + "/" + name
	}
	obj, ok, err := c.informer.GetStore().GetByKey(key)
	if err != nil || !ok {
		var zero T
		return zero, false
	}
	t, ok := obj.(T)
	return t, ok
}

// AddIndex installs a named index: f returns the index values of an object.
// It must be called before the informers start.
func (c *Collection[T]) AddIndex(name string, f func(T) []string) error {
	err := c.informer.AddIndexers(cache.Indexers{name: func(obj any) ([]string, error) {
		t, ok := obj.(T)
		if !ok {
			return nil, nil
		}
		return f(t), nil
	}})
	if err != nil {
		return fmt.Errorf("adding index %q: %w", name, err)
	}
	return nil
}

// ByIndex returns the objects whose index name has value.
func (c *Collection[T]) ByIndex(name, value string) []T {
	objs, err := c.informer.GetIndexer().ByIndex(name, value)
	if err != nil {
		return nil
	}
	return typed[T](objs)
}

// HasSynced reports whether the cache holds the initial listing.
func (c *Collection[T]) HasSynced() bool { return c.informer.HasSynced() }

// AddHandler calls h for every change, from the informer's goroutine, one
// call at a time per collection. Objects already cached are delivered as
// Added. Handlers should only record what changed and return.
func (c *Collection[T]) AddHandler(h func(Event[T])) error {
	_, err := c.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if t, ok := obj.(T); ok {
				h(Event[T]{Type: Added, Obj: t})
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(T)
			n, ok2 := newObj.(T)
			if ok1 && ok2 {
				h(Event[T]{Type: Updated, Old: o, Obj: n})
			}
		},
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if t, ok := obj.(T); ok {
				h(Event[T]{Type: Deleted, Obj: t})
			}
		},
	})
	if err != nil {
		return fmt.Errorf("adding event handler: %w", err)
	}
	return nil
}

func typed[T Object](objs []any) []T {
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}
