package rootcm

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellismesh/trellis/internal/kube/kubetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPublisherAPIServer: existing and new namespaces get the ConfigMap;
// an edit is reverted, a deletion undone, a root change republished.
func TestPublisherAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	kc := c.Client.Kube
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mkNS := func(name string) {
		t.Helper()
		if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkNS("before")
	var roots atomic.Value
	roots.Store([]byte("root-1\n"))
	p, err := New(Config{Client: kc, Roots: func() []byte { return roots.Load().([]byte) }, Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	want := func(ns, data string) {
		t.Helper()
		var last error
		for ctx.Err() == nil {
			cm, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, Name, metav1.GetOptions{})
			if err == nil && cm.Data[Key] == data {
				return
			}
			last = err
			if err == nil {
				last = errors.New("data " + cm.Data[Key])
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("namespace %s: ConfigMap %s never held %q: %v", ns, Name, data, last)
	}
	want("before", "root-1\n")
	want("default", "root-1\n")
	mkNS("after")
	want("after", "root-1\n")

	cm, err := kc.CoreV1().ConfigMaps("after").Get(ctx, Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[Key] = "tampered"
	if _, err := kc.CoreV1().ConfigMaps("after").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want("after", "root-1\n")
	if err := kc.CoreV1().ConfigMaps("before").Delete(ctx, Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want("before", "root-1\n")

	roots.Store([]byte("root-1\nroot-2\n"))
	want("before", "root-1\nroot-2\n")
	want("after", "root-1\nroot-2\n")

	if _, err := kc.CoreV1().ConfigMaps("kube-system").Get(ctx, Name, metav1.GetOptions{}); err == nil {
		t.Error("kube-system got the root ConfigMap")
	}
}
