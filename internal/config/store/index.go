package store

import (
	"slices"
	"strings"

	"github.com/trellismesh/trellis/internal/config"
)

// Index holds configs by key and lists them sorted, the state most Store
// implementations keep. It is not safe for concurrent use: its owner guards
// it with its own lock.
type Index struct {
	byKind map[config.GroupKind]map[nsName]config.Config
	// sorted caches the sorted list of a kind; cleared when the kind changes.
	sorted map[config.GroupKind][]config.Config
}

type nsName struct{ namespace, name string }

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{
		byKind: make(map[config.GroupKind]map[nsName]config.Config),
		sorted: make(map[config.GroupKind][]config.Config),
	}
}

// Get returns the config stored under key.
func (x *Index) Get(key config.Key) (config.Config, bool) {
	c, ok := x.byKind[key.Kind][nsName{key.Namespace, key.Name}]
	return c, ok
}

// Set stores c under c.Key(), replacing any previous value.
func (x *Index) Set(c config.Config) {
	m := x.byKind[c.Kind]
	if m == nil {
		m = make(map[nsName]config.Config)
		x.byKind[c.Kind] = m
	}
	m[nsName{c.Namespace, c.Name}] = c
	delete(x.sorted, c.Kind)
}

// Delete removes key; it is a no-op if key is absent.
func (x *Index) Delete(key config.Key) {
	m := x.byKind[key.Kind]
	if _, ok := m[nsName{key.Namespace, key.Name}]; !ok {
		return
	}
	delete(m, nsName{key.Namespace, key.Name})
	if len(m) == 0 {
		delete(x.byKind, key.Kind)
	}
	delete(x.sorted, key.Kind)
}

// Len returns the number of configs.
func (x *Index) Len() int {
	n := 0
	for _, m := range x.byKind {
		n += len(m)
	}
	return n
}

// List returns a new slice with the configs of kind in namespace ("" for
// all), sorted by namespace then name.
func (x *Index) List(kind config.GroupKind, namespace string) []config.Config {
	all := x.sortedKind(kind)
	if namespace == "" {
		return slices.Clone(all)
	}
	lo, _ := slices.BinarySearchFunc(all, namespace, func(c config.Config, ns string) int {
		return strings.Compare(c.Namespace, ns)
	})
	hi := lo
	for hi < len(all) && all[hi].Namespace == namespace {
		hi++
	}
	return slices.Clone(all[lo:hi])
}

// All returns every config sorted by key.
func (x *Index) All() []config.Config {
	kinds := make([]config.GroupKind, 0, len(x.byKind))
	for k := range x.byKind {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b config.GroupKind) int {
		return CompareKeys(config.Key{Kind: a}, config.Key{Kind: b})
	})
	var out []config.Config
	for _, k := range kinds {
		out = append(out, x.sortedKind(k)...)
	}
	return out
}

func (x *Index) sortedKind(kind config.GroupKind) []config.Config {
	if s, ok := x.sorted[kind]; ok {
		return s
	}
	m := x.byKind[kind]
	if len(m) == 0 {
		return nil
	}
	s := make([]config.Config, 0, len(m))
	for _, c := range m {
		s = append(s, c)
	}
	slices.SortFunc(s, func(a, b config.Config) int { return CompareKeys(a.Key(), b.Key()) })
	x.sorted[kind] = s
	return s
}
