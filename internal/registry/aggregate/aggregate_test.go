package aggregate

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is a static registry.
type fake struct {
	services  []*model.Service
	endpoints map[model.ServiceKey][]*model.Endpoint
	synced    atomic.Bool
	ran       atomic.Bool

	mu       sync.Mutex
	handlers []func(registry.Change)
}

func newFake(eps map[model.ServiceKey][]*model.Endpoint) *fake {
	f := &fake{endpoints: eps}
	for k := range eps {
		f.services = append(f.services, &model.Service{Hostname: k.Hostname, Namespace: k.Namespace})
	}
	model.SortServices(f.services)
	return f
}

func (f *fake) Services() []*model.Service                     { return f.services }
func (f *fake) Endpoints(k model.ServiceKey) []*model.Endpoint { return f.endpoints[k] }
func (f *fake) HasSynced() bool                                { return f.synced.Load() }
func (f *fake) Run(ctx context.Context)                        { f.ran.Store(true); <-ctx.Done() }
func (f *fake) RegisterHandler(h func(registry.Change)) {
	f.mu.Lock()
	f.handlers = append(f.handlers, h)
	f.mu.Unlock()
}
func (f *fake) emit(c registry.Change) {
	f.mu.Lock()
	hs := f.handlers
	f.mu.Unlock()
	for _, h := range hs {
		h(c)
	}
}

func key(h, ns string) model.ServiceKey { return model.ServiceKey{Hostname: h, Namespace: ns} }

func ep(addr string) []*model.Endpoint { return []*model.Endpoint{{Address: addr}} }

func TestServicesAndEndpoints(t *testing.T) {
	a := newFake(map[model.ServiceKey][]*model.Endpoint{
		key("b.example.com", "ns"): ep("1.1.1.1"),
		key("shared", "ns"):        ep("2.2.2.2"),
	})
	b := newFake(map[model.ServiceKey][]*model.Endpoint{
		key("a.example.com", "ns"): ep("3.3.3.3"),
		key("shared", "ns"):        ep("4.4.4.4"),
		key("shared", "other"):     ep("5.5.5.5"),
	})
	r, err := New(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range r.Services() {
		got = append(got, s.Key().String())
	}
	want := []string{"a.example.com (ns)", "b.example.com (ns)", "shared (ns)", "shared (other)"}
	if !cmp.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	for k, want := range map[model.ServiceKey]string{
		key("shared", "ns"):        "2.2.2.2", // first registry owns it
		key("shared", "other"):     "5.5.5.5",
		key("a.example.com", "ns"): "3.3.3.3",
	} {
		if eps := r.Endpoints(k); len(eps) != 1 || eps[0].Address != want {
			t.Errorf("Endpoints(%v) = %v, want %s", k, eps, want)
		}
	}
	if eps := r.Endpoints(key("missing", "ns")); eps != nil {
		t.Errorf("Endpoints(missing) = %v", eps)
	}
}

func TestHandlersRunSync(t *testing.T) {
	a, b := newFake(nil), newFake(nil)
	r, err := New(a, b)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []registry.Change
	r.RegisterHandler(func(c registry.Change) { mu.Lock(); got = append(got, c); mu.Unlock() })
	a.emit(registry.Change{Services: []model.ServiceKey{key("x", "a")}})
	b.emit(registry.Change{Services: []model.ServiceKey{key("y", "b")}, EndpointsOnly: true})
	want := []registry.Change{
		{Services: []model.ServiceKey{key("x", "a")}},
		{Services: []model.ServiceKey{key("y", "b")}, EndpointsOnly: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("changes (-want +got):\n%s", diff)
	}

	if r.HasSynced() {
		t.Fatal("synced before children")
	}
	a.synced.Store(true)
	if r.HasSynced() {
		t.Fatal("synced with one child pending")
	}
	b.synced.Store(true)
	if !r.HasSynced() {
		t.Fatal("not synced with all children synced")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	cancel()
	<-done
	if !a.ran.Load() || !b.ran.Load() {
		t.Fatal("Run did not run every child")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(); err == nil {
		t.Error("New() succeeded")
	}
	if _, err := New(newFake(nil), nil); err == nil {
		t.Error("New with a nil child succeeded")
	}
}
