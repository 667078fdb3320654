package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
)

// fakeDecode decodes a tiny line format instead of YAML. Documents are
// separated by "---" lines; each is one line "Kind ns/name host". A
// document "!bad" fails to decode, "!badobj ns/name" fails naming a
// VirtualService; a file starting with "BROKEN" fails as a whole.
func fakeDecode(path string, data []byte) ([]config.Config, error) {
	text := string(data)
	if strings.HasPrefix(text, "BROKEN") {
		return nil, errors.New("yaml: line 1: did not find expected key")
	}
	var out []config.Config
	var errs []error
	for i, doc := range strings.Split(text, "---\n") {
		doc = strings.TrimSpace(doc)
		if doc == "" {
			continue
		}
		if doc == "!bad" {
			errs = append(errs, store.Problem{
				Source:  config.Source{Document: i + 1},
				Message: "yaml: mapping values are not allowed in this context",
			})
			continue
		}
		if obj, ok := strings.CutPrefix(doc, "!badobj "); ok {
			ns, name, _ := strings.Cut(obj, "/")
			errs = append(errs, store.Problem{
				Source:  config.Source{Document: i + 1},
				Key:     config.Key{Kind: schema.VirtualService, Namespace: ns, Name: name},
				Field:   "spec.http[0].timeout",
				Message: "not a duration",
			})
			continue
		}
		var kind, nsName, host string
		if _, err := fmt.Sscan(doc, &kind, &nsName, &host); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i+1, err))
			continue
		}
		ns, name, _ := strings.Cut(nsName, "/")
		c := config.Config{
			Meta:   config.Meta{Namespace: ns, Name: name},
			Source: config.Source{Document: i + 1},
		}
		switch kind {
		case "VirtualService":
			c.Kind = schema.VirtualService
			c.Spec = &networking.VirtualService{Hosts: []string{host}}
		case "DestinationRule":
			c.Kind = schema.DestinationRule
			c.Spec = &networking.DestinationRule{Host: host}
		default:
			errs = append(errs, store.Problem{Source: c.Source, Message: "unknown kind " + kind})
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

// fakeValidate rejects the host "invalid" and warns about the host "warn".
func fakeValidate(c config.Config) ([]string, error) {
	var host, field string
	switch s := c.Spec.(type) {
	case *networking.VirtualService:
		host, field = s.Hosts[0], "spec.hosts[0]"
	case *networking.DestinationRule:
		host, field = s.Host, "spec.host"
	}
	switch host {
	case "invalid":
		return nil, store.Problem{Field: field, Message: "must be a valid host name"}
	case "warn":
		return []string{"host name is deprecated"}, nil
	}
	return nil, nil
}

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []config.Event
}

func (r *recorder) handle(ev config.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// since returns the events after the first n, formatted "type ns/name host".
func (r *recorder) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events[min(n, len(r.events)):] {
		c := ev.New
		if c == nil {
			c = ev.Old
		}
		out = append(out, fmt.Sprintf("%s %s/%s %s", ev.Type, c.Namespace, c.Name, host(*c)))
	}
	return out
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func host(c config.Config) string {
	switch s := c.Spec.(type) {
	case *networking.VirtualService:
		return s.Hosts[0]
	case *networking.DestinationRule:
		return s.Host
	}
	return ""
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fixture is a running store over a temporary directory.
type fixture struct {
	t   *testing.T
	dir string
	s   *Store
	rec *recorder
	log *logRecorder
}

type option func(*Config)

func withDebounce(d time.Duration) option { return func(c *Config) { c.Debounce = d } }

// newFixture writes files (relative path → content), starts a store over
// them and waits until it has synced. Run is stopped at cleanup.
func newFixture(t *testing.T, files map[string]string, opts ...option) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), rec: &recorder{}, log: &logRecorder{}}
	for name, content := range files {
		f.write(name, content)
	}
	cfg := Config{
		Dir:      f.dir,
		Schemas:  schema.Istio(),
		Decode:   fakeDecode,
		Validate: fakeValidate,
		Debounce: 20 * time.Millisecond,
		Logger:   slog.New(f.log),
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	s.RegisterEventHandler(schema.VirtualService, f.rec.handle)
	s.RegisterEventHandler(schema.DestinationRule, f.rec.handle)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	eventually(t, "initial sync", s.HasSynced)
	return f
}

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

func (f *fixture) write(name, content string) {
	f.t.Helper()
	p := f.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) remove(name string) {
	f.t.Helper()
	if err := os.Remove(f.path(name)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) rename(from, to string) {
	f.t.Helper()
	if err := os.Rename(f.path(from), f.path(to)); err != nil {
		f.t.Fatal(err)
	}
}

// host returns the host of a VirtualService in namespace default, or "".
func (f *fixture) host(name string) string {
	c, ok := f.s.Get(schema.VirtualService, "default", name)
	if !ok {
		return ""
	}
	return host(c)
}

// waitHost waits until VirtualService default/name has host ("" = absent).
func (f *fixture) waitHost(name, want string) {
	f.t.Helper()
	eventually(f.t, fmt.Sprintf("VirtualService %s to have host %q", name, want), func() bool {
		return f.host(name) == want
	})
}

// sync writes a sentinel object and waits for its event: every change made
// before sync has then been read and its events delivered, since reloads
// and deliveries are serial.
func (f *fixture) sync() {
	f.t.Helper()
	n := f.s.reloads.Load()
	want := fmt.Sprintf("default/sentinel h%d", n)
	f.write("zz-sentinel.yaml", "DestinationRule "+want)
	f.waitEvent(want)
}

// waitEvent waits until an event containing sub has been delivered.
func (f *fixture) waitEvent(sub string) {
	f.t.Helper()
	eventually(f.t, "event "+sub, func() bool {
		return slices.ContainsFunc(f.rec.since(0), func(e string) bool { return strings.Contains(e, sub) })
	})
}

// withoutSentinel drops the sentinel's events.
func withoutSentinel(events []string) []string {
	var out []string
	for _, e := range events {
		if !strings.Contains(e, "default/sentinel") {
			out = append(out, e)
		}
	}
	return out
}

func (f *fixture) problems(code store.Code) []store.Problem {
	var out []store.Problem
	for _, p := range f.s.Problems() {
		if p.Code == code {
			out = append(out, p)
		}
	}
	return out
}

// logRecorder is a slog.Handler that keeps records.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}

// count returns how many records have msg and an attribute containing sub.
func (l *logRecorder) count(msg, sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Message != msg {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if strings.Contains(a.Value.String(), sub) {
				n++
				return false
			}
			return true
		})
	}
	return n
}
