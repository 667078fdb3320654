package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
)

// DefaultDebounce is how long the tree must be quiet before it is re-read.
const DefaultDebounce = 100 * time.Millisecond

// maxDelayFactor bounds how long a continuous stream of changes can delay a
// reload: at most maxDelayFactor × Debounce after the first change.
const maxDelayFactor = 10

// DecodeFunc decodes the content of one file into objects. It is injected
// by cmd (wrapping internal/config/decode). It returns the objects of every
// document it could decode, with Source.Document set (the store sets
// Source.File), and a non-nil error if the file or any document could not
// be decoded. Each error joined with errors.Join becomes one Problem; an
// error that is or wraps a store.Problem keeps its document, key and field.
// An error naming its object (Key with kind and name) rejects only that
// object, which keeps its last valid version; any other error marks the
// whole file as broken, so that none of its previous objects is deleted.
type DecodeFunc func(path string, data []byte) ([]config.Config, error)

// Config configures a Store.
type Config struct {
	// Dir is the root of the tree. Required.
	Dir string
	// Schemas are the kinds the store serves. Required.
	Schemas schema.Set
	// Decode decodes one file. Required.
	Decode DecodeFunc
	// Validate checks each decoded object. Required.
	Validate store.ValidateFunc
	// Debounce is how long the tree must be quiet before it is re-read;
	// zero means DefaultDebounce.
	Debounce time.Duration
	// Logger receives problems (once each, when they appear and when they
	// are resolved) and reload summaries; nil discards.
	Logger *slog.Logger
}

// Store serves the objects defined by the files of a directory tree.
type Store struct {
	dir      string
	schemas  schema.Set
	decodeFn DecodeFunc
	validate store.ValidateFunc
	debounce time.Duration
	log      *slog.Logger
	d        *store.Dispatcher
	synced   atomic.Bool
	running  atomic.Bool
	reloads  atomic.Int64 // for tests

	mu       sync.Mutex
	index    *store.Index
	problems []store.Problem
	revision uint64
}

var _ store.Store = (*Store)(nil)

// New returns a store for cfg.Dir. It does no I/O: the tree is read by Run.
func New(cfg Config) (*Store, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("file store: Dir is required")
	case len(cfg.Schemas.All()) == 0:
		return nil, errors.New("file store: no schemas")
	case cfg.Decode == nil:
		return nil, errors.New("file store: Decode is required")
	case cfg.Validate == nil:
		return nil, errors.New("file store: Validate is required")
	case cfg.Debounce < 0:
		return nil, fmt.Errorf("file store: negative Debounce %v", cfg.Debounce)
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = DefaultDebounce
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{
		dir:      filepath.Clean(cfg.Dir),
		schemas:  cfg.Schemas,
		decodeFn: cfg.Decode,
		validate: cfg.Validate,
		debounce: cfg.Debounce,
		log:      log.With("dir", cfg.Dir),
		d:        store.NewDispatcher(),
		index:    store.NewIndex(),
	}, nil
}

// Schemas returns the kinds the store serves.
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

// HasSynced reports whether the tree has been read once and the events of
// that first read delivered.
func (s *Store) HasSynced() bool { return s.synced.Load() }

// Problems returns the current problems of the tree.
func (s *Store) Problems() []store.Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Problem(nil), s.problems...)
}

// Run reads the tree, then watches it and re-reads it after each burst of
// changes, until ctx is cancelled. If the tree cannot be watched, the
// problem is reported and the first read stays in force.
func (s *Store) Run(ctx context.Context) {
	if !s.running.CompareAndSwap(false, true) {
		s.log.Error("file store: Run called twice")
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.d.Run(ctx) })

	l := &loop{s: s, watched: make(map[string]bool), cache: make(map[string]*result)}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		l.watchErr = &store.Problem{
			Code:    store.CodeUnreadable,
			Source:  config.Source{File: s.dir},
			Message: fmt.Sprintf("not watching for changes: %v", err),
		}
	} else {
		defer fw.Close()
		l.w = fw
	}
	l.reload()
	s.d.Barrier(func() { s.synced.Store(true) })
	if fw == nil {
		<-ctx.Done()
		return
	}
	l.watch(ctx, fw)
}

// loop is the state owned by the Run goroutine.
type loop struct {
	s        *Store
	w        watcher // nil when watching failed
	watchErr *store.Problem
	watched  map[string]bool
	cache    map[string]*result
	// logged are the problems already logged, by their text.
	logged map[string]bool
}

// watch re-reads the tree after changes, debounced, until ctx is done.
func (l *loop) watch(ctx context.Context, fw *fsnotify.Watcher) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var since time.Time // first change not yet read; zero when none
	changed := func() {
		now := time.Now()
		if since.IsZero() {
			since = now
		}
		wait := min(l.s.debounce, since.Add(maxDelayFactor*l.s.debounce).Sub(now))
		timer.Reset(max(wait, 0))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.Events:
			if !ok {
				return
			}
			if relevant(ev) {
				l.s.log.Debug("change", "event", ev.String())
				changed()
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return
			}
			// Usually a queue overflow: events were lost, so re-read all.
			l.s.log.Warn("watch error; re-reading the tree", "error", err)
			changed()
		case <-timer.C:
			since = time.Time{}
			l.reload()
		}
	}
}

// relevant filters out events that cannot change what the tree defines,
// such as writes to editors' swap files. Creations, removals and renames of
// any name count, since the name may be a directory.
func relevant(ev fsnotify.Event) bool {
	base := filepath.Base(ev.Name)
	if hasExtension(base) && !strings.HasPrefix(base, ".") || strings.HasPrefix(base, "..") {
		return true
	}
	return ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)
}

// reload reads the tree and publishes what changed.
func (l *loop) reload() {
	s := l.s
	s.reloads.Add(1)
	sc := s.walk(l.w, l.watched, l.cache)
	l.cache = sc.files

	s.mu.Lock()
	want, problems := desired(sc.files, s.index.All())
	problems = append(problems, sc.problems...)
	if l.watchErr != nil {
		problems = append(problems, *l.watchErr)
	}
	store.SortProblems(problems)
	ch := s.apply(want, time.Now())
	s.problems = problems
	s.mu.Unlock()

	l.logProblems(problems)
	if ch.any() {
		s.log.Info("configuration changed", "added", ch.added, "updated", ch.updated,
			"deleted", ch.deleted, "files", len(sc.files), "objects", len(want))
	}
}

// logProblems logs problems that are new since the last reload and those
// that were resolved, so a broken file is logged once, not on every reload.
func (l *loop) logProblems(problems []store.Problem) {
	now := make(map[string]bool, len(problems))
	for _, p := range problems {
		text := p.Error()
		now[text] = true
		if l.logged[text] {
			continue
		}
		if p.Severity == store.SeverityWarning {
			l.s.log.Warn("configuration warning", "code", string(p.Code), "problem", text)
		} else {
			l.s.log.Error("configuration rejected", "code", string(p.Code), "problem", text)
		}
	}
	for text := range l.logged {
		if !now[text] {
			l.s.log.Info("configuration problem resolved", "problem", text)
		}
	}
	l.logged = now
}

func (s *Store) nextRevision() string {
	s.revision++
	return strconv.FormatUint(s.revision, 10)
}
