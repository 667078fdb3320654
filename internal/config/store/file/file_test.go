package file

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNew(t *testing.T) {
	ok := Config{Dir: "d", Schemas: schema.Istio(), Decode: fakeDecode, Validate: fakeValidate}
	tests := []struct {
		name   string
		mutate func(*Config)
		err    string
	}{
		{"valid", func(*Config) {}, ""},
		{"no dir", func(c *Config) { c.Dir = "" }, "Dir is required"},
		{"no schemas", func(c *Config) { c.Schemas = schema.Set{} }, "no schemas"},
		{"no decode", func(c *Config) { c.Decode = nil }, "Decode is required"},
		{"no validate", func(c *Config) { c.Validate = nil }, "Validate is required"},
		{"negative debounce", func(c *Config) { c.Debounce = -1 }, "negative Debounce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			_, err := New(cfg)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("New: got error %v, want %q", err, tt.err)
			}
		})
	}
}

func TestInitialLoad(t *testing.T) {
	f := newFixture(t, map[string]string{
		"vs.yaml":           "VirtualService default/a a.example\n---\nVirtualService ns1/b b.example\n",
		"sub/dr.yml":        "DestinationRule default/d d.example",
		"sub/deeper/x.json": "VirtualService ns1/c c.example",
		"notes.txt":         "VirtualService default/ignored x",
		".hidden.yaml":      "VirtualService default/hidden x",
	})
	// HasSynced implies the initial events have been delivered.
	if got := len(f.rec.since(0)); got != 4 {
		t.Fatalf("events at sync: got %d (%v), want 4", got, f.rec.since(0))
	}
	var names []string
	for _, c := range f.s.List(schema.VirtualService, "") {
		names = append(names, c.Namespace+"/"+c.Name)
	}
	if want := []string{"default/a", "ns1/b", "ns1/c"}; !slices.Equal(names, want) {
		t.Errorf("List: got %v, want %v", names, want)
	}
	if got := f.s.List(schema.VirtualService, "ns1"); len(got) != 2 {
		t.Errorf("List(ns1): got %d objects, want 2", len(got))
	}
	c, _ := f.s.Get(schema.VirtualService, "ns1", "b")
	if c.Source != (config.Source{File: f.path("vs.yaml"), Document: 2}) || c.Generation != 1 || c.ResourceVersion == "" {
		t.Errorf("Get: got source %v generation %d version %q", c.Source, c.Generation, c.ResourceVersion)
	}
	if ps := f.s.Problems(); len(ps) != 0 {
		t.Errorf("Problems: got %v, want none", ps)
	}
}

func TestAddChangeRemoveFile(t *testing.T) {
	f := newFixture(t, nil)
	f.write("a.yaml", "VirtualService default/a one")
	f.waitHost("a", "one")
	f.write("a.yaml", "VirtualService default/a two")
	f.waitHost("a", "two")
	if c, _ := f.s.Get(schema.VirtualService, "default", "a"); c.Generation != 2 {
		t.Errorf("generation after a spec change: got %d, want 2", c.Generation)
	}
	f.remove("a.yaml")
	f.waitHost("a", "")
	f.sync()
	want := []string{"add default/a one", "update default/a two", "delete default/a two"}
	if got := withoutSentinel(f.rec.since(0)); !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
}

func TestAtomicSave(t *testing.T) {
	tests := []struct {
		name string
		save func(f *fixture, content string)
	}{
		{"rename over", func(f *fixture, content string) {
			f.write(".a.yaml.tmp123", content)
			f.rename(".a.yaml.tmp123", "a.yaml")
		}},
		{"temp file in another directory", func(f *fixture, content string) {
			f.write(".tmp/a.yaml", content)
			f.rename(".tmp/a.yaml", "a.yaml")
		}},
		{"vim backup dance", func(f *fixture, content string) {
			f.write("4913", "")
			f.remove("4913")
			f.rename("a.yaml", "a.yaml~")
			f.write("a.yaml", content)
			f.remove("a.yaml~")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A long debounce keeps each save in one reload even on a busy machine.
			f := newFixture(t, map[string]string{"a.yaml": "VirtualService default/a one"}, withDebounce(300*time.Millisecond))
			n := f.rec.len()
			tt.save(f, "VirtualService default/a two")
			f.waitHost("a", "two")
			f.sync()
			if got, want := withoutSentinel(f.rec.since(n)), []string{"update default/a two"}; !slices.Equal(got, want) {
				t.Errorf("events: got %v, want %v", got, want)
			}
		})
	}
}

func TestNewSubdirectory(t *testing.T) {
	f := newFixture(t, nil)
	// The file is written right after the directories are created, before
	// the store can watch them.
	f.write("x/y/z/a.yaml", "VirtualService default/a one")
	f.waitHost("a", "one")
	f.write("x/y/z/a.yaml", "VirtualService default/a two")
	f.waitHost("a", "two")
	if err := os.RemoveAll(f.path("x")); err != nil {
		t.Fatal(err)
	}
	f.waitHost("a", "")
}

func TestConfigMapSymlinkSwap(t *testing.T) {
	f := newFixture(t, nil)
	mustSymlink := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, f.path(name)); err != nil {
			t.Fatal(err)
		}
	}
	// The layout kubelet uses for ConfigMap volumes.
	f.write("..v1/a.yaml", "VirtualService default/a one")
	mustSymlink("..v1", "..data")
	mustSymlink("..data/a.yaml", "a.yaml")
	f.waitEvent("add default/a one")
	n := f.rec.len()

	f.write("..v2/a.yaml", "VirtualService default/a two")
	mustSymlink("..v2", "..data_tmp")
	f.rename("..data_tmp", "..data")
	if err := os.RemoveAll(f.path("..v1")); err != nil {
		t.Fatal(err)
	}
	f.waitHost("a", "two")
	f.sync()
	if got, want := withoutSentinel(f.rec.since(n)), []string{"update default/a two"}; !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
	if c, _ := f.s.Get(schema.VirtualService, "default", "a"); c.Source.File != f.path("a.yaml") {
		t.Errorf("source: got %q, want the symlink's path", c.Source.File)
	}
}

func TestInvalidFileKeepsLastGood(t *testing.T) {
	f := newFixture(t, map[string]string{
		"a.yaml": "VirtualService default/a one\n---\nVirtualService default/b one\n",
	})
	n := f.rec.len()

	f.write("a.yaml", "BROKEN: [")
	eventually(t, "decode problem", func() bool { return len(f.problems(store.CodeDecode)) == 1 })
	p := f.problems(store.CodeDecode)[0]
	if p.Source.File != f.path("a.yaml") || !strings.Contains(p.Error(), "did not find expected key") {
		t.Errorf("problem: got %q", p.Error())
	}
	if f.host("a") != "one" || f.host("b") != "one" {
		t.Errorf("objects of a broken file: got a=%q b=%q, want both kept", f.host("a"), f.host("b"))
	}

	// One broken document: the others apply; the broken one's objects stay.
	f.write("a.yaml", "VirtualService default/a two\n---\n!bad\n")
	f.waitHost("a", "two")
	ps := f.problems(store.CodeDecode)
	if len(ps) != 1 || ps[0].Source.Document != 2 || !strings.Contains(ps[0].Error(), "a.yaml (document 2)") {
		t.Fatalf("problems: got %v, want one for document 2", ps)
	}
	if f.host("b") != "one" {
		t.Errorf("object of the broken document: got %q, want kept", f.host("b"))
	}

	// Fixed and b removed: b goes, the problem clears.
	f.write("a.yaml", "VirtualService default/a two\n")
	f.waitHost("b", "")
	if ps := f.s.Problems(); len(ps) != 0 {
		t.Errorf("problems after fix: %v", ps)
	}
	f.sync()
	want := []string{"update default/a two", "delete default/b one"}
	if got := withoutSentinel(f.rec.since(n)); !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
}

func TestDecodeErrorNamingObject(t *testing.T) {
	f := newFixture(t, map[string]string{
		"a.yaml": "VirtualService default/a one\n---\nVirtualService default/b one\n---\nVirtualService default/c one\n",
	})
	n := f.rec.len()
	// b has a bad field, c is gone: the file still counts as clean, so c is
	// deleted while b keeps its last valid version.
	f.write("a.yaml", "VirtualService default/a two\n---\n!badobj default/b\n")
	f.waitHost("c", "")
	f.sync()
	if got, want := withoutSentinel(f.rec.since(n)), []string{"update default/a two", "delete default/c one"}; !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
	if f.host("b") != "one" {
		t.Errorf("b: got host %q, want its last valid version", f.host("b"))
	}
	ps := f.problems(store.CodeDecode)
	want := f.path("a.yaml") + " (document 2): VirtualService default/b: spec.http[0].timeout: not a duration"
	if len(ps) != 1 || ps[0].Error() != want {
		t.Errorf("problems: got %v, want %q", ps, want)
	}
}

func TestInvalidObjectKeepsLastValid(t *testing.T) {
	f := newFixture(t, map[string]string{
		"a.yaml": "VirtualService default/a one\n---\nVirtualService default/b one\n",
	})
	n := f.rec.len()
	f.write("a.yaml", "VirtualService default/a invalid\n---\nVirtualService default/b two\n---\nVirtualService default/c invalid\n")
	f.waitHost("b", "two")
	if f.host("a") != "one" {
		t.Errorf("invalid object: got host %q, want the last valid one", f.host("a"))
	}
	if f.host("c") != "" {
		t.Errorf("invalid new object: got host %q, want none", f.host("c"))
	}
	ps := f.problems(store.CodeInvalid)
	if len(ps) != 2 {
		t.Fatalf("problems: got %v, want 2", ps)
	}
	want := f.path("a.yaml") + " (document 1): VirtualService default/a: spec.hosts[0]: must be a valid host name"
	if got := ps[0].Error(); got != want {
		t.Errorf("problem: got %q, want %q", got, want)
	}
	if ps[0].Field != "spec.hosts[0]" || ps[0].Key.Name != "a" {
		t.Errorf("problem fields: %+v", ps[0])
	}
	f.sync()
	if got, want := withoutSentinel(f.rec.since(n)), []string{"update default/b two"}; !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
}

func TestWarningsAccepted(t *testing.T) {
	f := newFixture(t, map[string]string{"a.yaml": "VirtualService default/a warn"})
	if f.host("a") != "warn" {
		t.Fatal("object with a warning was not accepted")
	}
	ps := f.problems(store.CodeWarning)
	if len(ps) != 1 || ps[0].Severity != store.SeverityWarning || ps[0].Key.Name != "a" {
		t.Errorf("problems: got %v", ps)
	}
}

func TestObjectRemovedFromCleanFile(t *testing.T) {
	f := newFixture(t, map[string]string{
		"a.yaml": "VirtualService default/a one\n---\nVirtualService default/b one\n",
	})
	f.write("a.yaml", "VirtualService default/a one\n")
	f.waitHost("b", "")
	if f.host("a") != "one" {
		t.Error("a was deleted with b")
	}
}

func TestMoveBetweenFiles(t *testing.T) {
	tests := []struct {
		name, from, to string
	}{
		{"to a later file", "a.yaml", "b.yaml"},
		{"to an earlier file", "b.yaml", "a.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]string{tt.from: "VirtualService default/x one\n---\nVirtualService default/y one"})
			n := f.rec.len()
			// Whatever the debounce does with these two writes, no reload
			// sees x missing, so nothing flaps.
			f.write(tt.to, "VirtualService default/x one")
			f.write(tt.from, "VirtualService default/y one")
			eventually(t, "x to move", func() bool {
				c, _ := f.s.Get(schema.VirtualService, "default", "x")
				return c.Source.File == f.path(tt.to)
			})
			f.sync()
			if got := withoutSentinel(f.rec.since(n)); len(got) != 0 {
				t.Errorf("events: got %v, want none", got)
			}
			if ps := f.problems(store.CodeDuplicate); len(ps) != 0 {
				t.Errorf("problems: %v", ps)
			}
		})
	}
}

func TestDuplicateKeys(t *testing.T) {
	f := newFixture(t, map[string]string{
		"b.yaml":     "VirtualService default/x from-b",
		"a/one.yaml": "VirtualService default/x from-a\n---\nVirtualService default/x again",
	})
	if f.host("x") != "from-a" {
		t.Errorf("winner: got %q, want the lexically first file's", f.host("x"))
	}
	var got []string
	for _, p := range f.problems(store.CodeDuplicate) {
		got = append(got, p.Source.String())
	}
	want := []string{f.path("a/one.yaml") + " (document 2)", f.path("b.yaml") + " (document 1)"}
	if !slices.Equal(got, want) {
		t.Errorf("duplicate problems at %v, want %v", got, want)
	}
	f.remove("a/one.yaml")
	f.waitHost("x", "from-b")
	if ps := f.problems(store.CodeDuplicate); len(ps) != 0 {
		t.Errorf("problems after removing the duplicate: %v", ps)
	}
}

func TestDebounceMergesBursts(t *testing.T) {
	f := newFixture(t, map[string]string{"a.yaml": "VirtualService default/a v0"}, withDebounce(300*time.Millisecond))
	n, reloads := f.rec.len(), f.s.reloads.Load()
	for i := 1; i <= 20; i++ {
		f.write("a.yaml", "VirtualService default/a v"+string(rune('a'+i)))
		f.write("b.yaml", "VirtualService default/b v"+string(rune('a'+i)))
	}
	f.waitEvent("add default/b vu")
	if got := f.s.reloads.Load() - reloads; got != 1 {
		t.Errorf("reloads for one burst: got %d, want 1", got)
	}
	if got, want := f.rec.since(n), []string{"update default/a vu", "add default/b vu"}; !slices.Equal(got, want) {
		t.Errorf("events: got %v, want %v", got, want)
	}
}

func TestDebounceBoundedUnderChurn(t *testing.T) {
	f := newFixture(t, nil, withDebounce(30*time.Millisecond))
	// Changes arrive faster than the debounce, forever; reloads must still
	// happen (at most 10 × Debounce after the first change).
	stop := time.Now().Add(10 * time.Second)
	for i := 0; f.host("a") == "" && time.Now().Before(stop); i++ {
		f.write("a.yaml", "VirtualService default/a h"+strings.Repeat("x", i%7))
		time.Sleep(5 * time.Millisecond) // pacing the writer, not waiting for the store
	}
	if f.host("a") == "" {
		t.Fatal("no reload while changes kept arriving")
	}
}

func TestProblemsLoggedOnce(t *testing.T) {
	f := newFixture(t, map[string]string{"bad.yaml": "BROKEN", "a.yaml": "VirtualService default/a invalid"})
	for i := 0; i < 3; i++ {
		f.write("other.yaml", "VirtualService default/o h"+strings.Repeat("x", i))
		f.sync()
	}
	if got := f.log.count("configuration rejected", "bad.yaml"); got != 1 {
		t.Errorf("decode problem logged %d times, want 1", got)
	}
	if got := f.log.count("configuration rejected", "default/a"); got != 1 {
		t.Errorf("invalid object logged %d times, want 1", got)
	}
	f.remove("bad.yaml")
	eventually(t, "resolved log", func() bool { return f.log.count("configuration problem resolved", "bad.yaml") == 1 })
}

func TestHandlerCallsBackIntoStore(t *testing.T) {
	f := newFixture(t, nil)
	seen := make(chan int, 10)
	f.s.RegisterEventHandler(schema.VirtualService, func(ev config.Event) {
		seen <- len(f.s.List(schema.VirtualService, "")) // must not deadlock
		f.s.RegisterEventHandler(schema.Gateway, func(config.Event) {})
	})
	f.write("a.yaml", "VirtualService default/a one")
	select {
	case got := <-seen:
		if got != 1 {
			t.Errorf("List from handler: got %d objects, want 1", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called")
	}
}

func TestUnreadableRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	f := &fixture{t: t, dir: dir, rec: &recorder{}, log: &logRecorder{}}
	s, err := New(Config{Dir: dir, Schemas: schema.Istio(), Decode: fakeDecode, Validate: fakeValidate})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "sync", s.HasSynced)
	if len(f.problems(store.CodeUnreadable)) == 0 {
		t.Errorf("no problem reported for a missing directory: %v", s.Problems())
	}
}
