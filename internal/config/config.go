package config

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// DefaultNamespace is the namespace of objects that do not name one, as with kubectl.
const DefaultNamespace = "default"

// GroupKind names a kind of configuration independently of its API version.
// Istio serves each kind at several versions (v1, v1beta1, v1alpha3) that all
// share one Go type, so the store is keyed by GroupKind.
type GroupKind struct {
	Group string
	Kind  string
}

func (gk GroupKind) String() string { return gk.Kind + "." + gk.Group }

// Key identifies one object in a store.
type Key struct {
	Kind      GroupKind
	Namespace string
	Name      string
}

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind.Kind, k.Namespace, k.Name) }

// Source says where an object was read from, so that errors can point at it.
type Source struct {
	// File is the path of the file, or another description of the origin
	// ("memory", "kubernetes").
	File string
	// Document is the 1-based index of the YAML document inside File; 0 when
	// not applicable.
	Document int
}

func (s Source) String() string {
	if s.Document > 0 {
		return fmt.Sprintf("%s (document %d)", s.File, s.Document)
	}
	return s.File
}

// Meta is the subset of Kubernetes object metadata Trellis uses.
type Meta struct {
	Kind GroupKind
	// Version is the API version the object was written with (v1, v1beta1,
	// v1alpha3). It does not affect semantics.
	Version           string
	Name              string
	Namespace         string
	Labels            map[string]string
	Annotations       map[string]string
	ResourceVersion   string
	Generation        int64
	CreationTimestamp time.Time
}

// Key returns the store key of the object.
func (m Meta) Key() Key { return Key{Kind: m.Kind, Namespace: m.Namespace, Name: m.Name} }

// Config is one configuration object. Spec is the istio.io/api message of the
// kind (for example *networkingv1alpha3.VirtualService) and must not be
// mutated once the Config has been published.
type Config struct {
	Meta
	Spec   proto.Message
	Source Source
}

// Key returns the store key of the object.
func (c Config) Key() Key { return c.Meta.Key() }

// Equal reports whether two configs have equal metadata identity and specs.
func (c Config) Equal(o Config) bool {
	if c.Key() != o.Key() || c.Generation != o.Generation {
		return false
	}
	if !mapsEqual(c.Labels, o.Labels) || !mapsEqual(c.Annotations, o.Annotations) {
		return false
	}
	return proto.Equal(c.Spec, o.Spec)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// EventType says what happened to an object.
type EventType int

const (
	EventAdd EventType = iota
	EventUpdate
	EventDelete
)

func (e EventType) String() string {
	switch e {
	case EventAdd:
		return "add"
	case EventUpdate:
		return "update"
	case EventDelete:
		return "delete"
	}
	return "unknown"
}

// Event is a change in a store. Old is set for updates and deletes, New for
// adds and updates.
type Event struct {
	Type EventType
	Old  *Config
	New  *Config
}

// Key returns the key of the object the event is about.
func (e Event) Key() Key {
	if e.New != nil {
		return e.New.Key()
	}
	return e.Old.Key()
}
