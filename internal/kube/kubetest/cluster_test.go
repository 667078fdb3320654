package kubetest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestKubeVersionMatchesTools(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "tools", "kube-apiserver", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/kubernetes (v\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("tools/kube-apiserver/go.mod does not require k8s.io/kubernetes")
	}
	if got := string(m[1]); got != KubeVersion {
		t.Fatalf("tools/kube-apiserver builds %s, harness runs KubeVersion %s", got, KubeVersion)
	}
}

func TestBinariesMissing(t *testing.T) {
	t.Setenv("TRELLIS_KUBE_APISERVER", filepath.Join(t.TempDir(), "no-such-apiserver"))
	t.Setenv("TRELLIS_ETCD", filepath.Join(t.TempDir(), "no-such-etcd"))
	_, _, err := Binaries()
	if err == nil {
		t.Fatal("Binaries succeeded with missing binaries")
	}
	for _, want := range []string{"scripts/kube-tools.sh", "apt-get install etcd-server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestStart(t *testing.T) {
	c := Start(t)
	ctx := t.Context()

	v, err := c.Client.Kube.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != KubeVersion {
		t.Errorf("server version %s, want %s", v.GitVersion, KubeVersion)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubetest"}}
	if _, err := c.Client.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Pod naming a service account that does not exist is accepted: there
	// is no service-account controller, so that admission plugin is off.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "kubetest"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "reviews",
			Containers:         []corev1.Container{{Name: "app", Image: "example.invalid/app"}},
		},
	}
	if _, err := c.Client.Kube.CoreV1().Pods("kubetest").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The kubeconfig works for kubectl (present on the image).
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl not found: install kubectl (it is on the Trellis image): %v", err)
	}
	out, err := exec.CommandContext(context.Background(), kubectl, "--kubeconfig", c.Kubeconfig,
		"get", "pods", "-n", "kubetest", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "pod/p" {
		t.Errorf("kubectl get pods = %q, want pod/p", got)
	}
}

// TestProcessesEndWithTest checks that etcd and kube-apiserver are gone
// once the test that started them has finished.
func TestProcessesEndWithTest(t *testing.T) {
	var pids []int
	t.Run("cluster", func(t *testing.T) {
		pids = Start(t).pids
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err != nil {
				t.Fatalf("process %d not running during the test: %v", pid, err)
			}
		}
	})
	if len(pids) != 2 {
		t.Fatalf("cluster had %d processes, want 2", len(pids))
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after the test (kill 0: %v)", pid, err)
		}
	}
}
