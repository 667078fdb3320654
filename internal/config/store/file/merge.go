package file

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/store"
)

// desired computes the objects the tree defines now, given the objects in
// force (published):
//
//  1. every admitted object, files in lexical order and documents in order;
//     a key defined again is a CodeDuplicate problem on the later definition;
//  2. a key whose definitions were all rejected keeps its published version;
//  3. a file that did not decode cleanly keeps the published objects it
//     defined, unless they are defined elsewhere now.
//
// Anything else that is published but not defined is deleted.
func desired(files map[string]*result, published []config.Config) (map[config.Key]config.Config, []store.Problem) {
	paths := slices.Sorted(maps.Keys(files))
	want := make(map[config.Key]config.Config)
	var problems []store.Problem
	for _, path := range paths {
		r := files[path]
		problems = append(problems, r.problems...)
		for _, c := range r.objects {
			if winner, ok := want[c.Key()]; ok {
				problems = append(problems, store.Problem{
					Code:    store.CodeDuplicate,
					Source:  c.Source,
					Key:     c.Key(),
					Message: fmt.Sprintf("also defined in %s, which wins", winner.Source),
				})
				continue
			}
			want[c.Key()] = c
		}
	}
	old := make(map[config.Key]config.Config, len(published))
	byFile := make(map[string][]config.Config)
	for _, c := range published {
		old[c.Key()] = c
		byFile[c.Source.File] = append(byFile[c.Source.File], c)
	}
	for _, path := range paths {
		r := files[path]
		for _, k := range r.rejected {
			if c, ok := old[k]; ok && !has(want, k) {
				want[k] = c
			}
		}
		if !r.clean {
			for _, c := range byFile[path] {
				if !has(want, c.Key()) {
					want[c.Key()] = c
				}
			}
		}
	}
	return want, problems
}

func has(m map[config.Key]config.Config, k config.Key) bool {
	_, ok := m[k]
	return ok
}

// changes is what apply did, for logging.
type changes struct{ added, updated, deleted int }

func (c changes) any() bool { return c.added+c.updated+c.deleted > 0 }

// apply makes the index hold want and publishes one event per real change,
// in key order. It assigns resource versions, generations (bumped when the
// spec changes) and creation timestamps. An object whose only change is its
// source (moved to another file) is replaced without an event. The caller
// holds s.mu.
func (s *Store) apply(want map[config.Key]config.Config, now time.Time) changes {
	var ch changes
	old := s.index.All()
	keys := make([]config.Key, 0, len(want)+len(old))
	for k := range want {
		keys = append(keys, k)
	}
	for _, c := range old {
		if !has(want, c.Key()) {
			keys = append(keys, c.Key())
		}
	}
	slices.SortFunc(keys, store.CompareKeys)
	for _, k := range keys {
		prev, had := s.index.Get(k)
		next, ok := want[k]
		switch {
		case had && !ok:
			s.index.Delete(k)
			s.d.Publish(config.Event{Type: config.EventDelete, Old: &prev})
			ch.deleted++
		case !had:
			next.Generation = 1
			next.CreationTimestamp = now
			next.ResourceVersion = s.nextRevision()
			s.index.Set(next)
			s.d.Publish(config.Event{Type: config.EventAdd, New: &next})
			ch.added++
		default:
			next.Generation = prev.Generation
			next.CreationTimestamp = prev.CreationTimestamp
			if next.Equal(prev) {
				if next.Source != prev.Source {
					next.ResourceVersion = prev.ResourceVersion
					s.index.Set(next)
				}
				continue
			}
			if !proto.Equal(next.Spec, prev.Spec) {
				next.Generation++
			}
			next.ResourceVersion = s.nextRevision()
			s.index.Set(next)
			s.d.Publish(config.Event{Type: config.EventUpdate, Old: &prev, New: &next})
			ch.updated++
		}
	}
	return ch
}
