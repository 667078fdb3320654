package configsource

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/structpb"
	apinetworking "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/kubefake"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewRequiresInformersAndValidate(t *testing.T) {
	c, err := kubefake.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Validate: ingest.Validate}); err == nil {
		t.Error("New without informers succeeded")
	}
	if _, err := New(Config{Informers: kube.NewInformers(c.Client, 0)}); err == nil {
		t.Error("New without Validate succeeded")
	}
}

// TestSchemas checks the source serves every kind the file source reads
// plus the Gateway API kinds.
func TestSchemas(t *testing.T) {
	got := Schemas()
	for _, sc := range append(schema.Istio().All(), schema.GatewayAPI().All()...) {
		if _, ok := got.Get(sc.GroupKind); !ok {
			t.Errorf("%s not served", sc.GroupKind)
		}
	}
	if n, want := len(got.All()), len(schema.Istio().All())+6; n != want {
		t.Errorf("%d kinds, want %d", n, want)
	}
}

// TestSourceFake runs the scenario against client-go's fake clientsets.
func TestSourceFake(t *testing.T) {
	c, err := kubefake.New()
	if err != nil {
		t.Fatal(err)
	}
	runScenario(t, c.Client)
}

// TestSourceAPIServer runs the same scenario against a real kube-apiserver
// with Istio's and the Gateway API's CRDs installed.
func TestSourceAPIServer(t *testing.T) {
	cl := kubetest.Start(t)
	kubetest.InstallCRDs(t, cl)
	runScenario(t, cl.Client)
}

// env runs a Source over one client bundle and records its events.
type env struct {
	t   *testing.T
	src *Source
	mu  sync.Mutex
	evs []string
}

func newEnv(t *testing.T, client *kube.Client) *env {
	t.Helper()
	inf := kube.NewInformers(client, 0)
	src, err := New(Config{Informers: inf, Validate: ingest.Validate})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, src: src}
	for _, sc := range src.Schemas().All() {
		src.RegisterEventHandler(sc.GroupKind, e.record)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { src.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		inf.Shutdown()
	})
	e.waitFor("source synced", func() error {
		if !src.HasSynced() {
			return fmt.Errorf("not synced")
		}
		return nil
	})
	return e
}

func (e *env) record(ev config.Event) {
	c := ev.New
	if c == nil {
		c = ev.Old
	}
	e.mu.Lock()
	e.evs = append(e.evs, fmt.Sprintf("%s %s %s/%s", ev.Type, c.Kind.Kind, c.Namespace, c.Name))
	e.mu.Unlock()
}

func (e *env) events() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.evs)
}

// waitFor polls cond until it returns nil; 30s covers a loaded machine with
// a real API server.
func (e *env) waitFor(what string, cond func() error) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEvents waits until the recorded events are want.
func (e *env) waitEvents(want ...string) {
	e.t.Helper()
	e.waitFor("events", func() error {
		if got := e.events(); !slices.Equal(got, want) {
			return fmt.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return nil
	})
}

// subsetOf returns the subset the VirtualService in force routes to.
func (e *env) subsetOf(ns, name string) string {
	c, ok := e.src.Get(schema.VirtualService, ns, name)
	if !ok {
		return "<none>"
	}
	return c.Spec.(*apinetworking.VirtualService).GetHttp()[0].GetRoute()[0].GetDestination().GetSubset()
}

func reviewsVS(subset, uriRegex string) *networkingv1.VirtualService {
	route := &apinetworking.HTTPRoute{
		Route: []*apinetworking.HTTPRouteDestination{{Destination: &apinetworking.Destination{Host: "reviews", Subset: subset}}},
	}
	if uriRegex != "" {
		route.Match = []*apinetworking.HTTPMatchRequest{{Uri: &apinetworking.StringMatch{
			MatchType: &apinetworking.StringMatch_Regex{Regex: uriRegex},
		}}}
	}
	return &networkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop", Labels: map[string]string{"app": "reviews"}},
		Spec:       apinetworking.VirtualService{Hosts: []string{"reviews"}, Http: []*apinetworking.HTTPRoute{route}},
	}
}

func runScenario(t *testing.T, client *kube.Client) {
	ctx := context.Background()
	vsAPI := client.Istio.NetworkingV1().VirtualServices("shop")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	if _, err := client.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, client)

	// A valid VirtualService is admitted with the API server's metadata.
	created, err := vsAPI.Create(ctx, reviewsVS("v1", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitEvents("add VirtualService shop/reviews")
	c, _ := e.src.Get(schema.VirtualService, "shop", "reviews")
	if c.ResourceVersion != created.ResourceVersion || c.Version != "v1" || c.Labels["app"] != "reviews" ||
		c.Source.File != SourceName || e.subsetOf("shop", "reviews") != "v1" {
		t.Errorf("admitted %+v (subset %s), want resourceVersion %s, version v1, label app=reviews, source %s, subset v1",
			c.Meta, e.subsetOf("shop", "reviews"), created.ResourceVersion, SourceName)
	}

	// An invalid update is reported with its field; the valid version
	// stays in force and no event is sent.
	cur, err := vsAPI.Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := reviewsVS("v2", "a(")
	bad.ResourceVersion = cur.ResourceVersion
	if _, err := vsAPI.Update(ctx, bad, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantProblem := store.Problem{
		Code: store.CodeInvalid, Severity: store.SeverityError,
		Source: config.Source{File: SourceName},
		Key:    config.Key{Kind: schema.VirtualService, Namespace: "shop", Name: "reviews"},
		Field:  "spec.http[0].match[0].uri.regex",
	}
	e.waitFor("the problem", func() error {
		ps := e.src.Problems()
		if len(ps) != 1 {
			return fmt.Errorf("problems %v, want one", ps)
		}
		p := ps[0]
		msg := p.Message
		p.Message = ""
		if p != wantProblem || !strings.Contains(msg, "invalid RE2") {
			return fmt.Errorf("problem %+v (%s), want %+v with invalid RE2", p, msg, wantProblem)
		}
		return nil
	})
	if got := e.src.Problems()[0].Error(); !strings.HasPrefix(got, "kubernetes: VirtualService shop/reviews: spec.http[0].match[0].uri.regex: ") {
		t.Errorf("problem text %q", got)
	}
	if s := e.subsetOf("shop", "reviews"); s != "v1" {
		t.Errorf("after an invalid update the route goes to subset %s, want the last valid v1", s)
	}

	// Fixing it clears the problem and applies the new version.
	cur, err = vsAPI.Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := reviewsVS("v3", "^/r")
	good.ResourceVersion = cur.ResourceVersion
	if _, err := vsAPI.Update(ctx, good, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitEvents("add VirtualService shop/reviews", "update VirtualService shop/reviews")
	if s := e.subsetOf("shop", "reviews"); s != "v3" {
		t.Errorf("subset %s after the fix, want v3", s)
	}
	if ps := e.src.Problems(); len(ps) != 0 {
		t.Errorf("problems after the fix: %v", ps)
	}

	// A new object that is invalid from the start is reported and never
	// served; deleting it clears the problem.
	broken := reviewsVS("v1", "((")
	broken.Name = "broken"
	if _, err := vsAPI.Create(ctx, broken, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the problem of the new object", func() error {
		for _, p := range e.src.Problems() {
			if p.Key.Name == "broken" && p.Field == "spec.http[0].match[0].uri.regex" && p.Severity == store.SeverityError {
				return nil
			}
		}
		return fmt.Errorf("problems %v", e.src.Problems())
	})
	if _, ok := e.src.Get(schema.VirtualService, "shop", "broken"); ok {
		t.Error("an invalid VirtualService is served")
	}
	if err := vsAPI.Delete(ctx, "broken", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitFor("problems cleared", func() error {
		if ps := e.src.Problems(); len(ps) != 0 {
			return fmt.Errorf("problems %v", ps)
		}
		return nil
	})

	// A Gateway API route is stored with its spec as a Struct.
	port := gatewayv1.PortNumber(9080)
	hr := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "bookinfo", Namespace: "shop"},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "gw"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "productpage", Port: &port},
			}}}}},
		},
	}
	if _, err := client.GatewayAPI.GatewayV1().HTTPRoutes("shop").Create(ctx, hr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitEvents("add VirtualService shop/reviews", "update VirtualService shop/reviews", "add HTTPRoute shop/bookinfo")
	got, _ := e.src.Get(schema.HTTPRoute, "shop", "bookinfo")
	spec, ok := got.Spec.(*structpb.Struct)
	if !ok {
		t.Fatalf("HTTPRoute spec is a %T, want a Struct", got.Spec)
	}
	backend := spec.AsMap()["rules"].([]any)[0].(map[string]any)["backendRefs"].([]any)[0].(map[string]any)
	if backend["name"] != "productpage" || backend["port"] != float64(9080) {
		t.Errorf("HTTPRoute backend %v, want productpage:9080", backend)
	}

	// Deleting the VirtualService removes it.
	if err := vsAPI.Delete(ctx, "reviews", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitEvents("add VirtualService shop/reviews", "update VirtualService shop/reviews", "add HTTPRoute shop/bookinfo",
		"delete VirtualService shop/reviews")
	if _, ok := e.src.Get(schema.VirtualService, "shop", "reviews"); ok {
		t.Error("deleted VirtualService still served")
	}
}
