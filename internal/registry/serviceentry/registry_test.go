package serviceentry

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store/memory"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	t       *testing.T
	store   *memory.Store
	reg     *Registry
	changes chan registry.Change
}

func acceptAll(config.Config) ([]string, error) { return nil, nil }

// newEnv starts a memory store and a registry over it.
func newEnv(t *testing.T) *env {
	t.Helper()
	var mu sync.Mutex
	clock := t0
	st, err := memory.New(memory.Config{
		Schemas:  schema.Istio(),
		Validate: acceptAll,
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(time.Second)
			return clock
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, changes: make(chan registry.Change, 1000)}
	e.reg, err = New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	e.reg.RegisterHandler(func(c registry.Change) { e.changes <- c })
	e.run(st.Run, e.reg.Run)
	e.waitFor("synced", e.reg.HasSynced)
	return e
}

func (e *env) run(fns ...func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Go(func() { f(ctx) })
	}
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) create(c config.Config) {
	e.t.Helper()
	if _, err := e.store.Create(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) update(c config.Config) {
	e.t.Helper()
	if _, err := e.store.Update(context.Background(), c); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) delete(c config.Config) {
	e.t.Helper()
	if err := e.store.Delete(context.Background(), c.Kind, c.Namespace, c.Name, ""); err != nil {
		e.t.Fatal(err)
	}
}

// expect waits for the next change and compares it.
func (e *env) expect(want registry.Change) {
	e.t.Helper()
	select {
	case got := <-e.changes:
		if diff := cmp.Diff(want, got); diff != "" {
			e.t.Fatalf("change (-want +got):\n%s", diff)
		}
	case <-time.After(5 * time.Second):
		e.t.Fatalf("timed out waiting for change %+v", want)
	}
}

// expectNone checks that no change is pending after a round trip through
// the store (a marker object in a namespace nobody selects).
func (e *env) expectNone() {
	e.t.Helper()
	marker := weConfig("zz-marker", fmt.Sprintf("m-%d", time.Now().UnixNano()), nil, &networking.WorkloadEntry{Address: "1.2.3.4"})
	e.create(marker)
	e.waitFor("marker", func() bool {
		e.reg.mu.Lock()
		defer e.reg.mu.Unlock()
		_, ok := e.reg.inputs["zz-marker"].workloadEntries[marker.Name]
		return ok
	})
	select {
	case c := <-e.changes:
		e.t.Fatalf("unexpected change %+v", c)
	default:
	}
}

func key(host, ns string) model.ServiceKey { return model.ServiceKey{Hostname: host, Namespace: ns} }

func hosts(svcs []*model.Service) []string {
	var out []string
	for _, s := range svcs {
		out = append(out, s.Key().String())
	}
	return out
}

func addrs(eps []*model.Endpoint) []string {
	var out []string
	for _, ep := range eps {
		out = append(out, ep.Address)
	}
	return out
}

func staticSE(ns, name string, selector map[string]string, hosts ...string) config.Config {
	se := &networking.ServiceEntry{
		Hosts:      hosts,
		Ports:      []*networking.ServicePort{{Number: 9080, Name: "http", Protocol: "HTTP"}},
		Location:   networking.ServiceEntry_MESH_INTERNAL,
		Resolution: networking.ServiceEntry_STATIC,
	}
	if selector != nil {
		se.WorkloadSelector = &networking.WorkloadSelector{Labels: selector}
	}
	return seConfig(ns, name, se)
}

func TestServiceEntryLifecycle(t *testing.T) {
	e := newEnv(t)
	se := staticSE("bookinfo", "reviews", nil, "reviews.bookinfo.svc.cluster.local", "reviews.example.com")
	se.Spec.(*networking.ServiceEntry).Endpoints = []*networking.WorkloadEntry{{Address: "10.0.0.1"}}
	e.create(se)
	e.expect(registry.Change{Services: []model.ServiceKey{
		key("reviews.bookinfo.svc.cluster.local", "bookinfo"),
		key("reviews.example.com", "bookinfo"),
	}})
	if got, want := hosts(e.reg.Services()), []string{
		"reviews.bookinfo.svc.cluster.local (bookinfo)",
		"reviews.example.com (bookinfo)",
	}; !cmp.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	if got := addrs(e.reg.Endpoints(key("reviews.example.com", "bookinfo"))); !cmp.Equal(got, []string{"10.0.0.1"}) {
		t.Fatalf("endpoints = %v", got)
	}

	// Changing only inline endpoints is an endpoints-only change.
	se2 := staticSE("bookinfo", "reviews", nil, "reviews.bookinfo.svc.cluster.local", "reviews.example.com")
	se2.Spec.(*networking.ServiceEntry).Endpoints = []*networking.WorkloadEntry{{Address: "10.0.0.1"}, {Address: "10.0.0.2"}}
	e.update(se2)
	e.expect(registry.Change{EndpointsOnly: true, Services: []model.ServiceKey{
		key("reviews.bookinfo.svc.cluster.local", "bookinfo"),
		key("reviews.example.com", "bookinfo"),
	}})

	// Dropping a host and changing a port: the dropped host and the changed
	// one are service changes.
	se3 := staticSE("bookinfo", "reviews", nil, "reviews.bookinfo.svc.cluster.local")
	se3.Spec.(*networking.ServiceEntry).Ports[0].Number = 9090
	se3.Spec.(*networking.ServiceEntry).Endpoints = []*networking.WorkloadEntry{{Address: "10.0.0.1"}, {Address: "10.0.0.2"}}
	e.update(se3)
	e.expect(registry.Change{Services: []model.ServiceKey{
		key("reviews.bookinfo.svc.cluster.local", "bookinfo"),
		key("reviews.example.com", "bookinfo"),
	}})
	svc, ok := e.reg.Service(key("reviews.bookinfo.svc.cluster.local", "bookinfo"))
	if !ok || svc.Ports[0].Number != 9090 {
		t.Fatalf("service after update = %+v", svc)
	}
	if e.reg.Endpoints(key("reviews.example.com", "bookinfo")) != nil {
		t.Fatal("endpoints of a removed service remain")
	}

	e.delete(se3)
	e.expect(registry.Change{Services: []model.ServiceKey{key("reviews.bookinfo.svc.cluster.local", "bookinfo")}})
	if len(e.reg.Services()) != 0 {
		t.Fatalf("services after delete = %v", hosts(e.reg.Services()))
	}
	e.expectNone()
}

func TestWorkloadEntrySelection(t *testing.T) {
	e := newEnv(t)
	e.create(staticSE("bookinfo", "ratings", map[string]string{"app": "ratings"}, "ratings.bookinfo.svc.cluster.local"))
	k := key("ratings.bookinfo.svc.cluster.local", "bookinfo")
	e.expect(registry.Change{Services: []model.ServiceKey{k}})

	v1 := weConfig("bookinfo", "ratings-v1", nil, &networking.WorkloadEntry{
		Address: "10.0.1.1", Labels: map[string]string{"app": "ratings", "version": "v1"}, ServiceAccount: "ratings",
	})
	e.create(v1)
	e.expect(registry.Change{Services: []model.ServiceKey{k}, EndpointsOnly: true})
	eps := e.reg.Endpoints(k)
	if len(eps) != 1 || eps[0].WorkloadName != "ratings-v1" || eps[0].TLSMode != "istio" || eps[0].Labels["version"] != "v1" {
		t.Fatalf("endpoints = %+v", eps)
	}

	// A matching entry in another namespace is not selected: no change.
	e.create(weConfig("other", "ratings-x", nil, &networking.WorkloadEntry{
		Address: "10.9.9.9", Labels: map[string]string{"app": "ratings"},
	}))
	e.expectNone()

	// Relabelling the entry away unselects it.
	gone := weConfig("bookinfo", "ratings-v1", nil, &networking.WorkloadEntry{
		Address: "10.0.1.1", Labels: map[string]string{"app": "details"},
	})
	e.update(gone)
	e.expect(registry.Change{Services: []model.ServiceKey{k}, EndpointsOnly: true})
	if eps := e.reg.Endpoints(k); len(eps) != 0 {
		t.Fatalf("endpoints after relabel = %v", addrs(eps))
	}

	// Metadata labels select too, and win over spec labels.
	back := gone
	back.Labels = map[string]string{"app": "ratings"}
	e.update(back)
	e.expect(registry.Change{Services: []model.ServiceKey{k}, EndpointsOnly: true})
	if got := addrs(e.reg.Endpoints(k)); !cmp.Equal(got, []string{"10.0.1.1"}) {
		t.Fatalf("endpoints = %v", got)
	}

	e.delete(back)
	e.expect(registry.Change{Services: []model.ServiceKey{k}, EndpointsOnly: true})

	// An entry that does not match any selector changes nothing.
	e.create(weConfig("bookinfo", "unrelated", nil, &networking.WorkloadEntry{Address: "10.0.1.9", Labels: map[string]string{"app": "x"}}))
	e.expectNone()
}

func TestSameHostTwoNamespaces(t *testing.T) {
	e := newEnv(t)
	e.create(staticSE("a", "db", map[string]string{"app": "db"}, "db.example.com"))
	e.expect(registry.Change{Services: []model.ServiceKey{key("db.example.com", "a")}})
	e.create(staticSE("b", "db", map[string]string{"app": "db"}, "db.example.com"))
	e.expect(registry.Change{Services: []model.ServiceKey{key("db.example.com", "b")}})
	e.create(weConfig("b", "db-1", map[string]string{"app": "db"}, &networking.WorkloadEntry{Address: "10.0.2.1"}))
	e.expect(registry.Change{Services: []model.ServiceKey{key("db.example.com", "b")}, EndpointsOnly: true})

	if got, want := hosts(e.reg.Services()), []string{"db.example.com (a)", "db.example.com (b)"}; !cmp.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	if eps := e.reg.Endpoints(key("db.example.com", "a")); len(eps) != 0 {
		t.Fatalf("namespace a got endpoints %v", addrs(eps))
	}
	if got := addrs(e.reg.Endpoints(key("db.example.com", "b"))); !cmp.Equal(got, []string{"10.0.2.1"}) {
		t.Fatalf("namespace b endpoints = %v", got)
	}
}

func TestSameHostOneNamespaceOldestWins(t *testing.T) {
	e := newEnv(t)
	old := staticSE("ns", "first", nil, "api.example.com")
	old.Spec.(*networking.ServiceEntry).Endpoints = []*networking.WorkloadEntry{{Address: "10.0.0.1"}}
	e.create(old)
	e.expect(registry.Change{Services: []model.ServiceKey{key("api.example.com", "ns")}})

	young := staticSE("ns", "second", nil, "api.example.com")
	young.Spec.(*networking.ServiceEntry).Ports[0].Number = 1234
	young.Spec.(*networking.ServiceEntry).Endpoints = []*networking.WorkloadEntry{{Address: "10.0.0.2"}}
	e.create(young)
	// The service keeps the older shape; the endpoints merge.
	e.expect(registry.Change{Services: []model.ServiceKey{key("api.example.com", "ns")}, EndpointsOnly: true})
	svc, _ := e.reg.Service(key("api.example.com", "ns"))
	if svc.Source.Name != "first" || svc.Ports[0].Number != 9080 {
		t.Fatalf("service = %+v", svc)
	}
	if got := addrs(e.reg.Endpoints(svc.Key())); !cmp.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Fatalf("endpoints = %v", got)
	}
	e.delete(old)
	e.expect(registry.Change{Services: []model.ServiceKey{key("api.example.com", "ns")}})
	svc, _ = e.reg.Service(key("api.example.com", "ns"))
	if svc.Source.Name != "second" {
		t.Fatalf("after deleting the oldest, service from %s", svc.Source.Name)
	}
}

func TestDNSResolution(t *testing.T) {
	e := newEnv(t)
	se := seConfig("ns", "google", &networking.ServiceEntry{
		Hosts:      []string{"www.google.com", "maps.google.com"},
		Ports:      []*networking.ServicePort{{Number: 443, Name: "https", Protocol: "HTTPS", TargetPort: 8443}},
		Resolution: networking.ServiceEntry_DNS,
	})
	e.create(se)
	e.expect(registry.Change{Services: []model.ServiceKey{key("maps.google.com", "ns"), key("www.google.com", "ns")}})
	for _, h := range []string{"www.google.com", "maps.google.com"} {
		svc, _ := e.reg.Service(key(h, "ns"))
		eps := e.reg.Endpoints(key(h, "ns"))
		if len(eps) != 1 || eps[0].Address != h || eps[0].TLSMode != "disabled" || eps[0].PortFor(svc.Ports[0]) != 8443 {
			t.Fatalf("%s: endpoints = %+v", h, eps)
		}
	}
}

func TestWorkloadGroupDefaults(t *testing.T) {
	e := newEnv(t)
	e.create(staticSE("vm", "ratings", map[string]string{"app": "ratings"}, "ratings.vm.svc.cluster.local"))
	k := key("ratings.vm.svc.cluster.local", "vm")
	e.expect(registry.Change{Services: []model.ServiceKey{k}})

	// The entry alone does not carry app=ratings; its group does.
	we := weConfig("vm", "ratings-10.0.3.1", nil, &networking.WorkloadEntry{Address: "10.0.3.1"})
	we.Annotations = map[string]string{"istio.io/autoRegistrationGroup": "ratings"}
	e.create(we)
	e.expectNone()

	wg := config.Config{
		Meta: config.Meta{Kind: schema.WorkloadGroup, Namespace: "vm", Name: "ratings"},
		Spec: &networking.WorkloadGroup{
			Metadata: &networking.WorkloadGroup_ObjectMeta{Labels: map[string]string{"app": "ratings"}},
			Template: &networking.WorkloadEntry{ServiceAccount: "ratings", Address: "10.255.0.1"},
		},
	}
	e.create(wg)
	e.expect(registry.Change{Services: []model.ServiceKey{k}, EndpointsOnly: true})
	eps := e.reg.Endpoints(k)
	if len(eps) != 1 || eps[0].Address != "10.0.3.1" || eps[0].ServiceAccount != "ratings" || eps[0].WorkloadName != "ratings" || eps[0].TLSMode != "istio" {
		t.Fatalf("endpoints = %+v", eps)
	}

	// A group alone (template address or not) creates no endpoint.
	e.delete(we)
	e.expect(registry.Change{Services: []model.ServiceKey{k}, EndpointsOnly: true})
	if eps := e.reg.Endpoints(k); len(eps) != 0 {
		t.Fatalf("group produced endpoints %v", addrs(eps))
	}
}

func TestRegistryCreatedLate(t *testing.T) {
	// The store is running and synced, with objects, before the registry
	// exists: Run must still see them all before reporting synced.
	e := newEnv(t) // a running store (and a first registry we ignore)
	e.create(staticSE("ns", "svc", map[string]string{"app": "a"}, "a.example.com"))
	e.create(weConfig("ns", "a-1", map[string]string{"app": "a"}, &networking.WorkloadEntry{Address: "10.0.4.1"}))
	e.waitFor("first registry", func() bool { return len(e.reg.Endpoints(key("a.example.com", "ns"))) == 1 })

	late, err := New(Config{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	e.run(late.Run)
	e.waitFor("late registry synced", late.HasSynced)
	if got := addrs(late.Endpoints(key("a.example.com", "ns"))); !cmp.Equal(got, []string{"10.0.4.1"}) {
		t.Fatalf("endpoints = %v", got)
	}
}

func TestNewRequiresStore(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
}

// TestConcurrentReadersAndWriters runs readers against a stream of writes;
// run with -race.
func TestConcurrentReadersAndWriters(t *testing.T) {
	e := newEnv(t)
	const n = 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for ctx.Err() == nil {
				for _, svc := range e.reg.Services() {
					for _, ep := range e.reg.Endpoints(svc.Key()) {
						_ = ep.Labels["app"] + svc.Hostname
					}
				}
			}
		})
	}
	for i := range n {
		ns := fmt.Sprintf("ns%d", i%5)
		e.create(staticSE(ns, fmt.Sprintf("se-%d", i), map[string]string{"app": "x"}, fmt.Sprintf("h%d.example.com", i)))
		e.create(weConfig(ns, fmt.Sprintf("we-%d", i), map[string]string{"app": "x"}, &networking.WorkloadEntry{Address: fmt.Sprintf("10.1.0.%d", i)}))
	}
	e.waitFor("all services", func() bool { return len(e.reg.Services()) == n })
	e.waitFor("all endpoints", func() bool {
		for _, svc := range e.reg.Services() {
			if len(e.reg.Endpoints(svc.Key())) != n/5 {
				return false
			}
		}
		return true
	})
	cancel()
	readers.Wait()
}
