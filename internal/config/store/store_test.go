package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

func key(ns, name string) config.Key {
	return config.Key{Kind: schema.VirtualService, Namespace: ns, Name: name}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		name string
		p    store.Problem
		want string
	}{
		{"everything", store.Problem{
			Code: store.CodeInvalid, Source: config.Source{File: "a.yaml", Document: 2},
			Key: key("ns", "x"), Field: "spec.hosts[0]", Message: "must be set",
		}, "a.yaml (document 2): VirtualService ns/x: spec.hosts[0]: must be set"},
		{"whole file", store.Problem{Code: store.CodeDecode, Source: config.Source{File: "a.yaml"}, Message: "bad"}, "a.yaml: bad"},
		{"no message", store.Problem{Code: store.CodeDuplicate, Key: key("ns", "x")}, "VirtualService ns/x: DuplicateObject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAsProblems(t *testing.T) {
	base := store.Problem{Code: store.CodeDecode, Source: config.Source{File: "f.yaml"}}
	err := errors.Join(
		errors.New("plain"),
		fmt.Errorf("wrapped: %w", store.Problem{Source: config.Source{Document: 3}, Field: "spec", Message: "bad"}),
		store.Problem{Code: store.CodeInvalid, Key: key("ns", "x"), Message: "invalid"},
	)
	var got []string
	for _, p := range store.AsProblems(err, base) {
		got = append(got, fmt.Sprintf("%s|%s", p.Code, p.Error()))
	}
	want := []string{
		"DecodeError|f.yaml: plain",
		"DecodeError|f.yaml (document 3): spec: bad",
		"InvalidObject|f.yaml: VirtualService ns/x: invalid",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if store.AsProblems(nil, base) != nil {
		t.Error("AsProblems(nil) is not nil")
	}
}

func vs(ns, name, host string) config.Config {
	return config.Config{
		Meta: config.Meta{Kind: schema.VirtualService, Namespace: ns, Name: name},
		Spec: &networking.VirtualService{Hosts: []string{host}},
	}
}

func TestIndex(t *testing.T) {
	x := store.NewIndex()
	for _, c := range []config.Config{vs("b", "1", ""), vs("a", "2", ""), vs("c", "0", ""), vs("a", "1", "")} {
		x.Set(c)
	}
	x.Set(config.Config{Meta: config.Meta{Kind: schema.Gateway, Namespace: "a", Name: "g"}})
	names := func(cs []config.Config) (out []string) {
		for _, c := range cs {
			out = append(out, c.Namespace+"/"+c.Name)
		}
		return out
	}
	tests := []struct {
		ns   string
		want []string
	}{
		{"", []string{"a/1", "a/2", "b/1", "c/0"}},
		{"a", []string{"a/1", "a/2"}},
		{"c", []string{"c/0"}},
		{"missing", nil},
	}
	for _, tt := range tests {
		if got := names(x.List(schema.VirtualService, tt.ns)); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q): got %v, want %v", tt.ns, got, tt.want)
		}
	}
	x.Delete(key("a", "1"))
	x.Delete(key("a", "nope"))
	if got := names(x.List(schema.VirtualService, "a")); !slices.Equal(got, []string{"a/2"}) {
		t.Errorf("after delete: %v", got)
	}
	if x.Len() != 4 || len(x.All()) != 4 {
		t.Errorf("Len %d, All %d, want 4", x.Len(), len(x.All()))
	}
}

func TestDispatcher(t *testing.T) {
	d := store.NewDispatcher()
	var mu sync.Mutex
	var got []string
	h := func(tag string) func(config.Event) {
		return func(ev config.Event) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, tag+" "+ev.Type.String()+" "+ev.Key().Name)
		}
	}
	a, b, c := vs("ns", "a", ""), vs("ns", "b", ""), vs("ns", "c", "")
	d.Publish(config.Event{Type: config.EventAdd, New: &a}) // no handler yet: dropped
	d.Register(schema.VirtualService, h("1"), []config.Config{a})
	d.Publish(config.Event{Type: config.EventAdd, New: &b})
	d.Register(schema.VirtualService, h("2"), []config.Config{a, b})
	d.Publish(config.Event{Type: config.EventDelete, Old: &c})
	done := make(chan struct{})
	d.Barrier(func() { close(done) })

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); d.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("barrier not reached")
	}
	cancel()
	<-stopped
	want := []string{"1 add a", "1 add b", "2 add a", "2 add b", "1 delete c", "2 delete c"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func newMemory(t *testing.T) *memory.Store {
	t.Helper()
	s, err := memory.New(memory.Config{
		Schemas:  schema.Istio(),
		Validate: func(config.Config) ([]string, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAggregate(t *testing.T) {
	ctx := context.Background()
	high, low := newMemory(t), newMemory(t)
	if _, err := low.Create(ctx, vs("ns", "pre", "low")); err != nil {
		t.Fatal(err)
	}
	a, err := store.NewAggregate(high, low)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	a.RegisterEventHandler(schema.VirtualService, func(ev config.Event) {
		c := ev.New
		if c == nil {
			c = ev.Old
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s %s %s", ev.Type, c.Name, c.Spec.(*networking.VirtualService).Hosts[0]))
	})
	events := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	// The aggregate registered on low first, so once this handler has seen
	// an event of low, the aggregate has too.
	lowSeen := make(chan string, 10)
	low.RegisterEventHandler(schema.VirtualService, func(ev config.Event) {
		if ev.New != nil {
			lowSeen <- ev.New.Spec.(*networking.VirtualService).Hosts[0]
		}
	})
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { defer close(stopped); a.Run(runCtx) }()
	defer func() { cancel(); <-stopped }()
	eventually(t, "sync", a.HasSynced)
	if got := events(); !slices.Equal(got, []string{"add pre low"}) {
		t.Fatalf("events at sync: %v", got)
	}

	steps := []struct {
		name string
		do   func() error
		want string // event, "" for none
	}{
		{"add to low", func() error { _, err := low.Create(ctx, vs("ns", "x", "low")); return err }, "add x low"},
		{"shadow by high", func() error { _, err := high.Create(ctx, vs("ns", "x", "high")); return err }, "update x high"},
		{"shadowed change", func() error {
			if _, err := low.Update(ctx, vs("ns", "x", "low2")); err != nil {
				return err
			}
			for h := range lowSeen {
				if h == "low2" {
					break
				}
			}
			return nil
		}, ""},
		{"unshadow", func() error { return high.Delete(ctx, schema.VirtualService, "ns", "x", "") }, "update x low2"},
		{"delete", func() error { return low.Delete(ctx, schema.VirtualService, "ns", "x", "") }, "delete x low2"},
	}
	n := len(events())
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if st.name == "shadow by high" {
			eventually(t, "duplicate problem", func() bool { return len(a.Problems()) == 1 })
			if p := a.Problems()[0]; p.Code != store.CodeDuplicate || p.Key != key("ns", "x") {
				t.Errorf("problem: %+v", p)
			}
		}
		if st.want == "" {
			continue
		}
		n++
		eventually(t, st.name, func() bool { return len(events()) >= n })
		if got := events()[n-1]; got != st.want {
			t.Errorf("%s: got event %q, want %q (all: %v)", st.name, got, st.want, events())
		}
	}
	if got := len(events()); got != n {
		t.Errorf("extra events: %v", events())
	}
	if c, ok := a.Get(schema.VirtualService, "ns", "pre"); !ok || len(a.List(schema.VirtualService, "")) != 1 {
		t.Errorf("Get/List: %v %v", c, a.List(schema.VirtualService, ""))
	}
	if len(a.Problems()) != 0 {
		t.Errorf("problems: %v", a.Problems())
	}
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
