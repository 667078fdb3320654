package kube_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/trellismesh/trellis/internal/kube"
	"github.com/trellismesh/trellis/internal/kube/kubefake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func svc(ns, name string, labels map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels,
			Annotations:   map[string]string{kube.LastAppliedAnnotation: `{"big":"copy"}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCollection(t *testing.T) {
	c, err := kubefake.New(svc("a", "one", map[string]string{"tier": "web"}), svc("b", "two", nil))
	if err != nil {
		t.Fatal(err)
	}
	inf := kube.NewInformers(c.Client, 0)
	services := inf.Services()
	if err := services.AddIndex("tier", func(s *corev1.Service) []string {
		if v := s.Labels["tier"]; v != "" {
			return []string{v}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []string
	if err := services.AddHandler(func(e kube.Event[*corev1.Service]) {
		mu.Lock()
		events = append(events, e.Type.String()+" "+e.Obj.Namespace+"/"+e.Obj.Name)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); inf.Shutdown() }()
	inf.Start(ctx)
	if err := inf.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}

	if got := len(services.List()); got != 2 {
		t.Fatalf("List: %d services, want 2", got)
	}
	if got := services.ListNamespace("a"); len(got) != 1 || got[0].Name != "one" {
		t.Fatalf("ListNamespace(a) = %v", got)
	}
	one, ok := services.Get("a", "one")
	if !ok {
		t.Fatal("Get(a, one) not found")
	}
	if one.ManagedFields != nil || one.Annotations != nil {
		t.Errorf("cached object not stripped: managedFields %v, annotations %v", one.ManagedFields, one.Annotations)
	}
	if _, ok := services.Get("a", "two"); ok {
		t.Error("Get(a, two) found an object of another namespace")
	}
	if got := services.ByIndex("tier", "web"); len(got) != 1 || got[0].Name != "one" {
		t.Errorf("ByIndex(tier, web) = %v", got)
	}

	// The fake sends a watch only the changes made after it started.
	select {
	case <-c.WatchStarted("services"):
	case <-time.After(10 * time.Second):
		t.Fatal("the informer never started its watch")
	}
	ctx2 := t.Context()
	one = one.DeepCopy()
	one.Labels = map[string]string{"tier": "db"}
	if _, err := c.Kube.CoreV1().Services("a").Update(ctx2, one, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Kube.CoreV1().Services("b").Delete(ctx2, "two", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"add a/one", "add b/two", "update a/one", "delete b/two"}
	waitFor(t, "events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got := slices.Clone(events)
		slices.Sort(got[:min(2, len(got))]) // initial adds come in any order
		return slices.Equal(got, want)
	})
	if got := services.ByIndex("tier", "db"); len(got) != 1 {
		t.Errorf("index not updated: ByIndex(tier, db) = %v", got)
	}
}

func TestFakeRoutesObjects(t *testing.T) {
	vs := &networkingv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "vs"}}
	c, err := kubefake.New(svc("ns", "s", nil), vs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.Istio.NetworkingV1().VirtualServices("ns").Get(ctx, "vs", metav1.GetOptions{}); err != nil {
		t.Errorf("VirtualService not in the istio clientset: %v", err)
	}
	if _, err := c.Kube.CoreV1().Services("ns").Get(ctx, "s", metav1.GetOptions{}); err != nil {
		t.Errorf("Service not in the kubernetes clientset: %v", err)
	}
	if _, err := kubefake.New(&unknown{}); err == nil {
		t.Error("kubefake.New accepted a type no scheme knows")
	}
}

type unknown struct{ metav1.TypeMeta }

func (u *unknown) DeepCopyObject() runtime.Object { return &unknown{} }
