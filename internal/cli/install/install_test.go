package install

import (
	"bytes"
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spf13/cobra"

	"github.com/trellismesh/trellis/internal/install"
	"github.com/trellismesh/trellis/internal/kube/kubetest"
	"github.com/trellismesh/trellis/internal/kube/webhook"
)

func run(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestManifestGenerate(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		opts install.Options
		crds bool
	}{
		{"defaults", nil, install.Options{}, true},
		{"flags", []string{"--namespace", "mesh", "--image", "r.example/t:v1", "--revision", "canary", "--replicas", "2", "--image-pull-policy", "Always", "--no-crds"},
			install.Options{Namespace: "mesh", Image: "r.example/t:v1", Revision: "canary", Replicas: 2, ImagePullPolicy: "Always"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, NewManifestCommand(), append([]string{"generate"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := install.Objects(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.crds {
				objs = install.WithoutCRDs(objs)
			}
			want, err := install.Render(objs)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("output differs from install.Render(install.Objects(%+v))", tc.opts)
			}
		})
	}
	if _, err := run(t, NewManifestCommand(), "generate", "--namespace", "Bad_NS"); err == nil || !strings.Contains(err.Error(), `namespace "Bad_NS"`) {
		t.Errorf("bad namespace: error %v", err)
	}
}

// TestInstallAPIServer installs into a real kube-apiserver. There is no
// kubelet, so the Deployment never becomes available: --wait=false, and
// the test checks the objects and the CRDs' Established condition.
func TestInstallAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	ctx := context.Background()
	args := []string{"--kubeconfig", c.Kubeconfig, "--namespace", "mesh", "--wait=false", "--timeout", "2m"}

	out, err := run(t, NewInstallCommand(), args...)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	objs, _ := install.Objects(install.Options{Namespace: "mesh"})
	if len(lines) != len(objs) {
		t.Fatalf("install printed %d lines for %d objects:\n%s", len(lines), len(objs), out)
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, " created") {
			t.Errorf("first install: %q, want created", l)
		}
	}

	crd, err := c.Client.Extensions.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "virtualservices.networking.istio.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	established := false
	for _, cond := range crd.Status.Conditions {
		established = established || (cond.Type == "Established" && cond.Status == "True")
	}
	if !established {
		t.Errorf("CRD %s not established: %+v", crd.Name, crd.Status.Conditions)
	}
	dep, err := c.Client.Kube.AppsV1().Deployments("mesh").Get(ctx, install.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var byTrellis bool
	for _, mf := range dep.ManagedFields {
		byTrellis = byTrellis || (mf.Manager == FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply)
	}
	if !byTrellis {
		t.Errorf("Deployment not applied by field manager %q: %+v", FieldManager, dep.ManagedFields)
	}
	if _, err := c.Client.Kube.CoreV1().Services("mesh").Get(ctx, install.ServiceName, metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	if _, err := c.Client.Kube.RbacV1().ClusterRoleBindings().Get(ctx, "trellis-mesh", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}

	// The control plane's BundleSyncer writes the caBundle with its own
	// update; a later install must keep it.
	vapi := c.Client.Kube.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	val, err := vapi.Get(ctx, webhook.ValidatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	val.Webhooks[0].ClientConfig.CABundle = []byte("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
	if _, err := vapi.Update(ctx, val, metav1.UpdateOptions{FieldManager: "trellis-bundle"}); err != nil {
		t.Fatal(err)
	}

	out, err = run(t, NewInstallCommand(), args...)
	if err != nil {
		t.Fatalf("second install: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasSuffix(l, " unchanged") {
			t.Errorf("second install: %q, want unchanged", l)
		}
	}
	val, err = vapi.Get(ctx, webhook.ValidatingName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(val.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Error("second install cleared the caBundle the control plane wrote")
	}

	// A changed option reconfigures only what it touches.
	out, err = run(t, NewInstallCommand(), append(args, "--image", "r.example/trellis:v2")...)
	if err != nil {
		t.Fatalf("third install: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Deployment mesh/trellis configured") || strings.Count(out, "configured") != 1 {
		t.Errorf("image change: want only the Deployment configured:\n%s", out)
	}

	out, err = run(t, NewUninstallCommand(), "--kubeconfig", c.Kubeconfig, "--namespace", "mesh")
	if err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	if _, err := c.Client.Kube.AppsV1().Deployments("mesh").Get(ctx, install.Name, metav1.GetOptions{}); err == nil {
		t.Error("Deployment still there after uninstall")
	}
	if _, err := vapi.Get(ctx, webhook.ValidatingName, metav1.GetOptions{}); err == nil {
		t.Error("ValidatingWebhookConfiguration still there after uninstall")
	}
	if _, err := c.Client.Extensions.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, crd.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("uninstall without --crds removed CRD %s: %v", crd.Name, err)
	}
}
