package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/trellismesh/trellis/internal/freeport"
	"github.com/trellismesh/trellis/internal/kube/inject"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
	"github.com/trellismesh/trellis/internal/kube/webhook"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p)))
}

// TestDiscoveryInjectsAPIServer runs `trellis discovery --kubeconfig`
// against a real API server and creates a Pod that comes back injected
// through the command's webhook (registered by URL on loopback, caBundle
// written by the elected leader).
func TestDiscoveryInjectsAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	kubetest.InstallCRDs(t, c)
	kc := c.Client.Kube
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{inject.NamespaceLabel: "enabled"}}},
	} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	whAddr := freeAddr(t)
	t.Setenv("KUBECONFIG", "")
	t.Setenv("POD_NAMESPACE", "istio-system")
	cmd := NewCommand(slog.New(slog.DiscardHandler))
	cmd.SetArgs([]string{
		"--kubeconfig", c.Kubeconfig,
		"--xds-address", "127.0.0.1:0", "--monitoring-address", "-", "--secure-grpc-address", "127.0.0.1:0",
		"--webhook-address", whAddr, "--webhook-ip", "127.0.0.1",
		"--proxy-image", "example.com/proxy:1", "--native-sidecar", "false",
		"--leader-identity", "cli-test",
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("discovery: %v", err)
		}
	}()

	mut, err := webhook.MutatingConfig(webhook.MutatingName, webhook.Target{URL: "https://" + whAddr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mut, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       corev1.PodSpec{ServiceAccountName: "default", Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}}},
	}
	var last error
	for {
		p, err := kc.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{})
		if err == nil {
			var got []string
			for _, c := range p.Spec.Containers {
				got = append(got, c.Name+"="+c.Image)
			}
			if !strings.Contains(strings.Join(got, " "), inject.ProxyContainer+"=example.com/proxy:1") {
				t.Fatalf("pod created without the proxy: %v", got)
			}
			return
		}
		// The webhook fails closed until discovery serves it and the
		// leader has written the caBundle.
		last = err
		select {
		case err := <-done:
			t.Fatalf("discovery exited: %v", err)
		case <-ctx.Done():
			t.Fatalf("no injected pod: %v", errors.Join(ctx.Err(), last, fmt.Errorf("webhook %s", whAddr)))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
