package status

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	apinetworking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/configsource"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
	"github.com/trellismesh/trellis/internal/kube/leader"
	"github.com/trellismesh/trellis/internal/model"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewRequires(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without Dynamic, Informers and Messages succeeded")
	}
}

// replica is one control plane's part in the test: its own informers and
// CRD source (for the analysis), an elector, and a status writer that runs
// only while the elector leads.
type replica struct {
	id     string
	inf    *kube.Informers
	src    *configsource.Source
	el     *leader.Elector
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	writer *Writer // the writer of the current term, nil when not leading
	writes int64   // patches by earlier terms
}

// services are the registry's services for the analysis: reviews and
// ratings in shop, one HTTP port each.
func services() []*model.Service {
	var out []*model.Service
	for _, n := range []string{"reviews", "ratings"} {
		out = append(out, &model.Service{
			Hostname: n + ".shop.svc.cluster.local", Namespace: "shop",
			Ports: []model.Port{{Name: "http", Number: 9080, Protocol: model.ProtocolHTTP}},
		})
	}
	return out
}

// messages is what discovery gives the writer: analysis of the source's
// objects (in a snapshot) and of its problems.
func messages(src *configsource.Source) []analysis.Message {
	var cs []config.Config
	for _, sc := range schema.Istio().All() {
		cs = append(cs, src.List(sc.GroupKind, "")...)
	}
	snap := model.NewSnapshot(model.SnapshotInput{DomainSuffix: "cluster.local", Configs: cs, Services: services()})
	return analysis.Analyze(analysis.Input{Snapshot: snap, Problems: src.Problems()})
}

func startReplica(t *testing.T, c *kube.Client, id string) *replica {
	t.Helper()
	inf := kube.NewInformers(c, 0)
	src, err := configsource.New(configsource.Config{Informers: inf, Validate: ingest.Validate})
	if err != nil {
		t.Fatal(err)
	}
	el, err := leader.New(leader.Config{
		Client: c.Kube, Namespace: "istio-system", Identity: id,
		LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{id: id, inf: inf, src: src, el: el, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	var wg sync.WaitGroup
	wg.Go(func() { src.Run(ctx) })
	wg.Go(func() {
		_ = el.Run(ctx, func(lctx context.Context) {
			w, err := New(Config{
				Dynamic: c.Dynamic, Informers: inf, Messages: func() []analysis.Message { return messages(src) },
				Interval: 100 * time.Millisecond, FieldManager: "status-" + id,
			})
			if err != nil {
				t.Error(err)
				return
			}
			r.mu.Lock()
			r.writer = w
			r.mu.Unlock()
			if err := w.Run(lctx); err != nil {
				t.Errorf("%s: Run: %v", id, err)
			}
			r.mu.Lock()
			r.writer = nil
			r.writes += w.Writes()
			r.mu.Unlock()
		})
	})
	go func() {
		wg.Wait()
		inf.Shutdown()
		close(r.done)
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

// totalWrites is every patch this replica made.
func (r *replica) totalWrites() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.writes
	if r.writer != nil {
		n += r.writer.Writes()
	}
	return n
}

func (r *replica) passes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.writer == nil {
		return 0
	}
	return r.writer.Passes()
}

func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vs builds a VirtualService for host in shop routing to reviews.
func vs(name, host string, gateways ...string) *networkingv1.VirtualService {
	return &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: apinetworking.VirtualService{
			Hosts: []string{host}, Gateways: gateways,
			Http: []*apinetworking.HTTPRoute{{Route: []*apinetworking.HTTPRouteDestination{{
				Destination: &apinetworking.Destination{Host: "reviews"},
			}}}},
		},
	}
}

// TestWriterAPIServer runs two replicas against a real API server: the
// leader writes the analysis of invalid and conflicting objects into their
// status and clears it when they are fixed, keeping others' conditions;
// the other replica writes nothing until it takes over.
func TestWriterAPIServer(t *testing.T) {
	cl := kubetest.Start(t)
	kubetest.InstallCRDs(t, cl)
	c := cl.Client
	ctx := context.Background()
	for _, ns := range []string{"istio-system", "shop"} {
		if _, err := c.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	vss := c.Istio.NetworkingV1().VirtualServices("shop")
	create := func(v *networkingv1.VirtualService) {
		t.Helper()
		if _, err := vss.Create(ctx, v, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", v.Name, err)
		}
	}
	// Two VirtualServices for one host on the mesh gateway (IST0109), one
	// bound to a Gateway that does not exist (IST0101), one invalid that
	// got past admission (no webhook here: IST0106), one fine.
	create(vs("first", "reviews"))
	create(vs("second", "reviews"))
	create(vs("edge", "shop.example.com", "shop/edge-gateway"))
	bad := vs("bad", "ratings")
	bad.Spec.Http[0].Match = []*apinetworking.HTTPMatchRequest{{Uri: &apinetworking.StringMatch{MatchType: &apinetworking.StringMatch_Regex{Regex: "(("}}}}
	create(bad)
	create(vs("fine", "fine.example.com"))

	a := startReplica(t, c, "replica-a")
	b := startReplica(t, c, "replica-b")
	replicas := []*replica{a, b}
	var lead, follower *replica
	waitFor(t, "a leader", func() error {
		for i, r := range replicas {
			if r.el.Leading() {
				lead, follower = r, replicas[1-i]
				return nil
			}
		}
		return fmt.Errorf("none leads")
	})

	codes := func(name string) ([]string, *networkingv1.VirtualService, error) {
		v, err := vss.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, err
		}
		var out []string
		for _, m := range v.Status.ValidationMessages {
			out = append(out, m.GetType().GetCode()+"/"+m.GetLevel().String())
		}
		return out, v, nil
	}
	expect := func(what string, want map[string][]string) {
		t.Helper()
		waitFor(t, what, func() error {
			for name, w := range want {
				got, _, err := codes(name)
				if err != nil {
					return err
				}
				if !slices.Equal(got, w) {
					return fmt.Errorf("%s: validationMessages %v, want %v", name, got, w)
				}
			}
			return nil
		})
	}
	expect("messages written", map[string][]string{
		"first":  {"IST0109/ERROR"},
		"second": {"IST0109/ERROR"},
		"edge":   {"IST0101/ERROR"},
		"bad":    {"IST0106/ERROR"},
		"fine":   nil,
	})
	_, edge, _ := codes("edge")
	if m := edge.Status.ValidationMessages[0]; m.GetType().GetName() != "ReferencedResourceNotFound" ||
		m.GetDocumentationUrl() != "https://istio.io/latest/docs/reference/config/analysis/ist0101/" {
		t.Errorf("edge's message: %v", m)
	}

	// Only the leader wrote, and only the status.
	if n := follower.totalWrites(); n != 0 {
		t.Errorf("%s (not leading) wrote %d times", follower.id, n)
	}
	for _, name := range []string{"first", "second", "edge", "bad"} {
		_, v, _ := codes(name)
		var managers []string
		for _, f := range v.ManagedFields {
			if f.Subresource == "status" {
				managers = append(managers, f.Manager)
			}
		}
		if want := []string{"status-" + lead.id}; !slices.Equal(managers, want) {
			t.Errorf("%s: status managers %v, want %v", name, managers, want)
		}
	}

	// Nothing changes: three more passes write nothing.
	before, p := lead.totalWrites(), lead.passes()
	waitFor(t, "three passes", func() error {
		if lead.passes() < p+3 {
			return fmt.Errorf("%d passes", lead.passes()-p)
		}
		return nil
	})
	if n := lead.totalWrites(); n != before {
		t.Errorf("%d writes while nothing changed", n-before)
	}

	// A condition someone else wrote on first is kept when its messages go.
	cond := []byte(`{"status":{"conditions":[{"type":"Reconciled","status":"True","reason":"ByHand"}]}}`)
	if _, err := c.Dynamic.Resource(runtimeschema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace("shop").Patch(ctx, "first", types.MergePatchType, cond,
		metav1.PatchOptions{FieldManager: "someone-else"}, "status"); err != nil {
		t.Fatal(err)
	}

	// Fix them: delete the second VirtualService, create the Gateway, fix
	// the regex. Every message goes.
	if err := vss.Delete(ctx, "second", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gw := &networkingv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "edge-gateway", Namespace: "shop"},
		Spec: apinetworking.Gateway{Selector: map[string]string{"istio": "ingressgateway"}, Servers: []*apinetworking.Server{{
			Port: &apinetworking.Port{Number: 80, Name: "http", Protocol: "HTTP"}, Hosts: []string{"shop.example.com"},
		}}}}
	if _, err := c.Istio.NetworkingV1().Gateways("shop").Create(ctx, gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, cur, _ := codes("bad")
	cur.Spec.Http[0].Match[0].Uri.MatchType = &apinetworking.StringMatch_Regex{Regex: "/ratings/.*"}
	if _, err := vss.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("messages cleared", map[string][]string{"first": nil, "edge": nil, "bad": nil, "fine": nil})
	_, first, _ := codes("first")
	if len(first.Status.Conditions) != 1 || first.Status.Conditions[0].GetReason() != "ByHand" {
		t.Errorf("first's conditions after clearing: %v", first.Status.Conditions)
	}
	if gw, err := c.Istio.NetworkingV1().Gateways("shop").Get(ctx, "edge-gateway", metav1.GetOptions{}); err != nil || len(gw.Status.ValidationMessages) != 0 {
		t.Errorf("Gateway: %v, messages %v", err, gw.Status.ValidationMessages)
	}
	if n := follower.totalWrites(); n != 0 {
		t.Errorf("%s (not leading) wrote %d times", follower.id, n)
	}

	// The leader stops; the other takes over and writes a new conflict.
	lead.stop()
	waitFor(t, follower.id+" leads", func() error {
		if !follower.el.Leading() {
			return fmt.Errorf("not leading")
		}
		return nil
	})
	create(vs("third", "reviews"))
	expect("new conflict written by the new leader", map[string][]string{"first": {"IST0109/ERROR"}, "third": {"IST0109/ERROR"}})
	_, third, _ := codes("third")
	for _, f := range third.ManagedFields {
		if f.Subresource == "status" && f.Manager != "status-"+follower.id {
			t.Errorf("third's status written by %s", f.Manager)
		}
	}
}
