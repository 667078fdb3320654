package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/config/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// validate rejects the host "invalid" and warns about the host "warn".
func validate(c config.Config) ([]string, error) {
	vs, ok := c.Spec.(*networking.VirtualService)
	if !ok || len(vs.Hosts) == 0 {
		return nil, nil
	}
	switch vs.Hosts[0] {
	case "invalid":
		return nil, store.Problem{Field: "spec.hosts[0]", Message: "must be a valid host name"}
	case "warn":
		return []string{"deprecated host"}, nil
	}
	return nil, nil
}

func vs(ns, name, host string) config.Config {
	return config.Config{
		Meta: config.Meta{Kind: schema.VirtualService, Namespace: ns, Name: name},
		Spec: &networking.VirtualService{Hosts: []string{host}},
	}
}

func hostOf(c config.Config) string { return c.Spec.(*networking.VirtualService).Hosts[0] }

func newStore(t *testing.T) *memory.Store {
	t.Helper()
	s, err := memory.New(memory.Config{Schemas: schema.Istio(), Validate: validate})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// run starts s.Run and stops it at cleanup.
func run(t *testing.T, s store.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, "sync", s.HasSynced)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type recorder struct {
	mu  sync.Mutex
	got []string
}

func (r *recorder) handle(ev config.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := ev.New
	if c == nil {
		c = ev.Old
	}
	r.got = append(r.got, fmt.Sprintf("%s %s/%s %s", ev.Type, c.Namespace, c.Name, hostOf(*c)))
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func TestNew(t *testing.T) {
	if _, err := memory.New(memory.Config{Validate: validate}); err == nil {
		t.Error("New without schemas: no error")
	}
	if _, err := memory.New(memory.Config{Schemas: schema.Istio()}); err == nil {
		t.Error("New without Validate: no error")
	}
}

func TestWriteAndRead(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	for _, c := range []config.Config{vs("b", "x", "h1"), vs("a", "y", "h2"), vs("", "z", "h3"), vs("a", "x", "h4")} {
		if _, err := s.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for _, c := range s.List(schema.VirtualService, "") {
		names = append(names, c.Namespace+"/"+c.Name)
	}
	if want := []string{"a/x", "a/y", "b/x", "default/z"}; !slices.Equal(names, want) {
		t.Errorf("List: got %v, want %v", names, want)
	}
	if got := s.List(schema.VirtualService, "a"); len(got) != 2 {
		t.Errorf("List(a): got %d, want 2", len(got))
	}
	c, ok := s.Get(schema.VirtualService, "default", "z")
	if !ok || c.Generation != 1 || c.ResourceVersion == "" || c.Source.File != memory.DefaultSource || c.CreationTimestamp.IsZero() {
		t.Errorf("Get: %v %+v", ok, c.Meta)
	}
}

func TestWriteErrors(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	rev, err := s.Create(ctx, vs("ns", "a", "one"))
	if err != nil {
		t.Fatal(err)
	}
	unknown := vs("ns", "a", "one")
	unknown.Kind = config.GroupKind{Group: "example.com", Kind: "Widget"}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"create existing", func() error { _, err := s.Create(ctx, vs("ns", "a", "two")); return err }, store.ErrAlreadyExists},
		{"create unknown kind", func() error { _, err := s.Create(ctx, unknown); return err }, store.ErrUnknownKind},
		{"update missing", func() error { _, err := s.Update(ctx, vs("ns", "b", "two")); return err }, store.ErrNotFound},
		{"update stale", func() error {
			c := vs("ns", "a", "two")
			c.ResourceVersion = rev + "0"
			_, err := s.Update(ctx, c)
			return err
		}, store.ErrConflict},
		{"delete missing", func() error { return s.Delete(ctx, schema.VirtualService, "ns", "b", "") }, store.ErrNotFound},
		{"delete stale", func() error { return s.Delete(ctx, schema.VirtualService, "ns", "a", rev+"0") }, store.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if c, _ := s.Get(schema.VirtualService, "ns", "a"); hostOf(c) != "one" || c.ResourceVersion != rev {
		t.Errorf("object changed by failed writes: %+v", c)
	}
}

func TestRejectsInvalid(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Create(ctx, vs("ns", "a", "one")); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"create", "update"} {
		t.Run(op, func(t *testing.T) {
			var err error
			if op == "create" {
				_, err = s.Create(ctx, vs("ns", "b", "invalid"))
			} else {
				_, err = s.Update(ctx, vs("ns", "a", "invalid"))
			}
			var p store.Problem
			if !errors.As(err, &p) {
				t.Fatalf("error %v does not wrap a Problem", err)
			}
			name := map[string]string{"create": "b", "update": "a"}[op]
			for _, part := range []string{"VirtualService", "ns/" + name, "spec.hosts[0]", "must be a valid host name"} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %q", err, part)
				}
			}
			if p.Code != store.CodeInvalid || p.Field != "spec.hosts[0]" {
				t.Errorf("problem: %+v", p)
			}
		})
	}
	if c, _ := s.Get(schema.VirtualService, "ns", "a"); hostOf(c) != "one" {
		t.Errorf("invalid update replaced the object: %q", hostOf(c))
	}
	if _, ok := s.Get(schema.VirtualService, "ns", "b"); ok {
		t.Error("invalid object created")
	}
	wrongSpec := vs("ns", "c", "x")
	wrongSpec.Spec = &networking.Gateway{}
	if _, err := s.Create(ctx, wrongSpec); err == nil || !strings.Contains(err.Error(), "spec") {
		t.Errorf("spec of the wrong type: got %v", err)
	}
}

func TestUpdateSemantics(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	rec := &recorder{}
	s.RegisterEventHandler(schema.VirtualService, rec.handle)
	rev1, _ := s.Create(ctx, vs("ns", "a", "one"))
	rev2, err := s.Update(ctx, vs("ns", "a", "one"))
	if err != nil || rev2 != rev1 {
		t.Errorf("no-op update: got %q, %v; want %q", rev2, err, rev1)
	}
	c := vs("ns", "a", "two")
	c.ResourceVersion = rev1
	rev3, err := s.Update(ctx, c)
	if err != nil || rev3 == rev1 {
		t.Fatalf("update: got %q, %v", rev3, err)
	}
	labelled := vs("ns", "a", "two")
	labelled.Labels = map[string]string{"app": "x"}
	if _, err := s.Update(ctx, labelled); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(schema.VirtualService, "ns", "a")
	if got.Generation != 2 {
		t.Errorf("generation: got %d, want 2 (bumped by spec changes only)", got.Generation)
	}
	// The caller's values are copied: changing them later changes nothing.
	labelled.Labels["app"] = "y"
	labelled.Spec.(*networking.VirtualService).Hosts[0] = "mutated"
	if got, _ := s.Get(schema.VirtualService, "ns", "a"); got.Labels["app"] != "x" || hostOf(got) != "two" {
		t.Errorf("store shares the caller's values: %v %q", got.Labels, hostOf(got))
	}
	if err := s.Delete(ctx, schema.VirtualService, "ns", "a", ""); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	want := []string{"add ns/a one", "update ns/a two", "update ns/a two", "delete ns/a two"}
	if got := rec.events(); !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
}

func TestWarnings(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Create(ctx, vs("ns", "a", "warn")); err != nil {
		t.Fatal(err)
	}
	ps := s.Problems()
	if len(ps) != 1 || ps[0].Severity != store.SeverityWarning || ps[0].Key.Name != "a" || ps[0].Message != "deprecated host" {
		t.Fatalf("problems: %v", ps)
	}
	if _, err := s.Update(ctx, vs("ns", "a", "fine")); err != nil {
		t.Fatal(err)
	}
	if ps := s.Problems(); len(ps) != 0 {
		t.Errorf("problems after fix: %v", ps)
	}
}

func TestHandlerReplayAndCallbacks(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Create(ctx, vs("ns", "a", "one")); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	// Registered after Run with an object present: replayed as an add.
	rec := &recorder{}
	s.RegisterEventHandler(schema.VirtualService, rec.handle)
	// A handler writing back into the store must not deadlock.
	s.RegisterEventHandler(schema.VirtualService, func(ev config.Event) {
		if ev.Type == config.EventAdd && ev.New.Name == "a" {
			if _, err := s.Create(ctx, vs("ns", "from-handler", "h")); err != nil {
				t.Error(err)
			}
			s.RegisterEventHandler(schema.Gateway, func(config.Event) {})
		}
	})
	eventually(t, "events", func() bool { return len(rec.events()) == 2 })
	if got, want := rec.events(), []string{"add ns/a one", "add ns/from-handler h"}; !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
}

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	rec := &recorder{}
	s.RegisterEventHandler(schema.VirtualService, rec.handle)
	run(t, s)
	const writers, writes = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			name := fmt.Sprintf("w%d", w)
			if _, err := s.Create(ctx, vs("ns", name, "h")); err != nil {
				t.Error(err)
			}
			for i := range writes {
				if _, err := s.Update(ctx, vs("ns", name, fmt.Sprint(i))); err != nil {
					t.Error(err)
				}
				s.List(schema.VirtualService, "")
			}
		})
	}
	wg.Wait()
	eventually(t, "all events", func() bool { return len(rec.events()) == writers*(writes+1) })
	// Per object, events arrive in write order.
	last := map[string]int{}
	for _, e := range rec.events() {
		var typ, key, host string
		fmt.Sscan(e, &typ, &key, &host)
		if typ == "update" {
			var i int
			fmt.Sscan(host, &i)
			if prev, ok := last[key]; ok && i != prev+1 {
				t.Fatalf("%s: update %d after %d", key, i, prev)
			}
			last[key] = i
		}
	}
}
