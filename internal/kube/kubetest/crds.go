package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// CRD sources: the modules that publish them and the files inside them.
// Istio's CRDs (every kind, all served versions) come from istio.io/api;
// the Gateway API's standard channel from sigs.k8s.io/gateway-api. Both
// modules are dependencies of the main module, so the files are in the
// module cache at the versions the generated clients were built for.
var crdFiles = []struct{ module, glob string }{
	{"istio.io/api", "kubernetes/customresourcedefinitions.gen.yaml"},
	{"sigs.k8s.io/gateway-api", "config/crd/standard/gateway.networking.k8s.io_*.yaml"},
}

// establishTimeout bounds the wait for the CRDs to be served.
const establishTimeout = 60 * time.Second

// CRDs reads Istio's and the Gateway API's CustomResourceDefinitions from
// the module cache (located with `go list -m`). Documents of other kinds in
// those files (the Gateway API's ValidatingAdmissionPolicy) are skipped.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, src := range crdFiles {
		dir, err := moduleDir(src.module)
		if err != nil {
			return nil, err
		}
		paths, err := filepath.Glob(filepath.Join(dir, src.glob))
		if err != nil || len(paths) == 0 {
			return nil, fmt.Errorf("no CRD files %s in module %s at %s", src.glob, src.module, dir)
		}
		for _, p := range paths {
			crds, err := readCRDs(p)
			if err != nil {
				return nil, err
			}
			out = append(out, crds...)
		}
	}
	return out, nil
}

func moduleDir(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("locating module %s (go list -m; run `go mod download %s`): %w", module, module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s is not downloaded: run `go mod download %s`", module, module)
	}
	return dir, nil
}

func readCRDs(path string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CRDs: %w", err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*apiextensionsv1.CustomResourceDefinition
	for {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := dec.Decode(&crd); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decoding %s: %w", path, err)
		}
		if crd.Kind != "CustomResourceDefinition" || crd.Name == "" {
			continue
		}
		out = append(out, &crd)
	}
}

// InstallCRDs creates Istio's and the Gateway API's CRDs (see CRDs) in c
// and waits until every one is established, so that typed clients and
// informers can use the kinds when it returns. Failures fail the test.
func InstallCRDs(t testing.TB, c *Cluster) { installCRDs(t, c) }

func installCRDs(t TB, c *Cluster) {
	t.Helper()
	crds, err := CRDs()
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	ctx := context.Background()
	api := c.Client.Extensions.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		if _, err := api.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("kubetest: creating CRD %s: %v", crd.Name, err)
		}
	}
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, establishTimeout, true, func(ctx context.Context) (bool, error) {
			got, err := api.Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("kubetest: CRD %s not established within %v: %v", crd.Name, establishTimeout, err)
		}
	}
}
