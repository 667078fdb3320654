package kube

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/kube/kubefake"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewRequiresInformers(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without informers succeeded")
	}
}

// TestRegistryFake runs the scenario against client-go's fake clientsets.
func TestRegistryFake(t *testing.T) {
	c, err := kubefake.New()
	if err != nil {
		t.Fatal(err)
	}
	runScenario(t, c.Client)
}

// TestRegistryAPIServer runs the same scenario against a real
// kube-apiserver and etcd.
func TestRegistryAPIServer(t *testing.T) {
	runScenario(t, kubetest.Start(t).Client)
}
