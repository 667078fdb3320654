package memory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
)

// DefaultSource is the Source.File of objects written without a source.
const DefaultSource = "memory"

// Config configures a Store.
type Config struct {
	// Schemas are the kinds the store accepts. Required.
	Schemas schema.Set
	// Validate checks every object before it is stored. Required.
	Validate store.ValidateFunc
	// Logger receives rejected writes at debug level; nil discards.
	Logger *slog.Logger
	// Now returns the creation timestamp of new objects; nil means time.Now.
	Now func() time.Time
}

// Store is an in-memory Store and Writer, safe for concurrent use.
type Store struct {
	schemas  schema.Set
	validate store.ValidateFunc
	log      *slog.Logger
	now      func() time.Time
	d        *store.Dispatcher
	synced   atomic.Bool

	mu       sync.Mutex
	index    *store.Index
	warnings map[config.Key][]store.Problem
	revision uint64
	running  bool
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Writer = (*Store)(nil)
)

// New returns an empty store.
func New(cfg Config) (*Store, error) {
	if len(cfg.Schemas.All()) == 0 {
		return nil, errors.New("memory store: no schemas")
	}
	if cfg.Validate == nil {
		return nil, errors.New("memory store: Validate is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Store{
		schemas:  cfg.Schemas,
		validate: cfg.Validate,
		log:      log,
		now:      now,
		d:        store.NewDispatcher(),
		index:    store.NewIndex(),
		warnings: make(map[config.Key][]store.Problem),
	}, nil
}

// Schemas returns the kinds the store accepts.
func (s *Store) Schemas() schema.Set { return s.schemas }

// Get returns one object.
func (s *Store) Get(kind config.GroupKind, namespace, name string) (config.Config, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.Get(config.Key{Kind: kind, Namespace: namespace, Name: name})
}

// List returns the objects of kind in namespace ("" for all), sorted.
func (s *Store) List(kind config.GroupKind, namespace string) []config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index.List(kind, namespace)
}

// RegisterEventHandler adds a handler; see store.Store.
func (s *Store) RegisterEventHandler(kind config.GroupKind, h func(config.Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d.Register(kind, h, s.index.List(kind, ""))
}

// Run delivers events until ctx is cancelled. Writes are accepted before
// Run; their events are delivered once it starts.
func (s *Store) Run(ctx context.Context) {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		s.log.Error("memory store: Run called twice")
		return
	}
	s.running = true
	s.d.Barrier(func() { s.synced.Store(true) })
	s.mu.Unlock()
	s.d.Run(ctx)
}

// HasSynced reports whether Run has delivered the events of the writes made
// before it started.
func (s *Store) HasSynced() bool { return s.synced.Load() }

// Problems returns the validation warnings of the stored objects. Rejected
// writes are not kept: they are returned to the writer.
func (s *Store) Problems() []store.Problem {
	s.mu.Lock()
	var out []store.Problem
	for _, ps := range s.warnings {
		out = append(out, ps...)
	}
	s.mu.Unlock()
	store.SortProblems(out)
	return out
}

// Create stores a new object; see store.Writer.
func (s *Store) Create(_ context.Context, c config.Config) (string, error) {
	c, warnings, err := s.admit(c)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.index.Get(c.Key()); ok {
		return "", fmt.Errorf("creating %s: %w", c.Key(), store.ErrAlreadyExists)
	}
	c.Generation = 1
	c.CreationTimestamp = s.now()
	c.ResourceVersion = s.nextRevision()
	s.index.Set(c)
	s.setWarnings(c.Key(), warnings)
	s.d.Publish(config.Event{Type: config.EventAdd, New: &c})
	return c.ResourceVersion, nil
}

// Update replaces an existing object; see store.Writer. An update that
// changes nothing returns the current revision and emits no event.
func (s *Store) Update(_ context.Context, c config.Config) (string, error) {
	c, warnings, err := s.admit(c)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.index.Get(c.Key())
	if !ok {
		return "", fmt.Errorf("updating %s: %w", c.Key(), store.ErrNotFound)
	}
	if c.ResourceVersion != "" && c.ResourceVersion != old.ResourceVersion {
		return "", fmt.Errorf("updating %s at version %s, stored version is %s: %w",
			c.Key(), c.ResourceVersion, old.ResourceVersion, store.ErrConflict)
	}
	c.Generation = old.Generation
	c.CreationTimestamp = old.CreationTimestamp
	if c.Equal(old) {
		return old.ResourceVersion, nil
	}
	if !proto.Equal(c.Spec, old.Spec) {
		c.Generation++
	}
	c.ResourceVersion = s.nextRevision()
	s.index.Set(c)
	s.setWarnings(c.Key(), warnings)
	s.d.Publish(config.Event{Type: config.EventUpdate, Old: &old, New: &c})
	return c.ResourceVersion, nil
}

// Delete removes an object; see store.Writer.
func (s *Store) Delete(_ context.Context, kind config.GroupKind, namespace, name, resourceVersion string) error {
	key := config.Key{Kind: kind, Namespace: namespace, Name: name}
	if key.Namespace == "" {
		key.Namespace = config.DefaultNamespace
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.index.Get(key)
	if !ok {
		return fmt.Errorf("deleting %s: %w", key, store.ErrNotFound)
	}
	if resourceVersion != "" && resourceVersion != old.ResourceVersion {
		return fmt.Errorf("deleting %s at version %s, stored version is %s: %w",
			key, resourceVersion, old.ResourceVersion, store.ErrConflict)
	}
	s.nextRevision()
	s.index.Delete(key)
	delete(s.warnings, key)
	s.d.Publish(config.Event{Type: config.EventDelete, Old: &old})
	return nil
}

// admit normalises and validates c outside the lock, and returns a private
// copy that later changes by the caller cannot reach. A rejection error
// wraps the Problems, each naming kind, namespace/name, field and reason.
func (s *Store) admit(c config.Config) (config.Config, []store.Problem, error) {
	if c.Namespace == "" {
		c.Namespace = config.DefaultNamespace
	}
	if _, ok := s.schemas.Get(c.Kind); !ok {
		return c, nil, fmt.Errorf("rejected %s: %w %s", c.Key(), store.ErrUnknownKind, c.Kind)
	}
	if c.Spec != nil {
		c.Spec = proto.Clone(c.Spec)
	}
	c.Labels = maps.Clone(c.Labels)
	c.Annotations = maps.Clone(c.Annotations)
	problems, ok := store.Check(s.schemas, s.validate, c)
	if !ok {
		var errs []error
		for _, p := range problems {
			if p.Severity == store.SeverityError {
				errs = append(errs, p)
			}
		}
		err := fmt.Errorf("rejected: %w", errors.Join(errs...))
		s.log.Debug("rejected write", "key", c.Key().String(), "error", err)
		return c, nil, err
	}
	if c.Source.File == "" {
		c.Source = config.Source{File: DefaultSource}
		for i := range problems {
			problems[i].Source = c.Source
		}
	}
	return c, problems, nil
}

func (s *Store) setWarnings(key config.Key, ps []store.Problem) {
	if len(ps) == 0 {
		delete(s.warnings, key)
		return
	}
	s.warnings[key] = ps
}

func (s *Store) nextRevision() string {
	s.revision++
	return strconv.FormatUint(s.revision, 10)
}
