package kubetest

import (
	"context"
	"strings"
	"syscall"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestStandalone(t *testing.T) {
	c, stop, err := Standalone(t.TempDir(), false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.Kube.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Errorf("listing namespaces: %v", err)
	}
	stop()
	for _, pid := range c.pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running after stop", pid)
		}
	}
}

func TestStandaloneMissingBinary(t *testing.T) {
	t.Setenv("TRELLIS_KUBE_APISERVER", "/nonexistent/kube-apiserver")
	_, _, err := Standalone(t.TempDir(), false, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver not found") {
		t.Fatalf("error %v, want kube-apiserver not found", err)
	}
}
