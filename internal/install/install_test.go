package install

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"

	chart "github.com/trellismesh/trellis/manifests/charts/trellis"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const chartDir = "../../manifests/charts/trellis"

func TestObjectsGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"custom", Options{Namespace: "mesh", Image: "registry.example/trellis:v1", ImagePullPolicy: "IfNotPresent", Revision: "canary", Replicas: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := Objects(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Render(WithoutCRDs(objs))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("manifests differ from %s (go test ./internal/install -update rewrites it):\n%s", golden, got)
			}
		})
	}
}

func TestObjectsContent(t *testing.T) {
	objs, err := Objects(Options{Namespace: "mesh"})
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]Object{}
	for _, o := range objs {
		byKind[o.Object.GetKind()] = append(byKind[o.Object.GetKind()], o)
		if o.Namespaced && o.Object.GetNamespace() != "mesh" {
			t.Errorf("%s: namespace %q, want mesh", o, o.Object.GetNamespace())
		}
		if !o.Namespaced && o.Object.GetNamespace() != "" {
			t.Errorf("%s: cluster-scoped object with a namespace", o)
		}
	}
	for kind, n := range map[string]int{
		"Namespace": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
		"Service": 1, "Deployment": 1, "MutatingWebhookConfiguration": 1, "ValidatingWebhookConfiguration": 1,
	} {
		if len(byKind[kind]) != n {
			t.Errorf("%d %s objects, want %d", len(byKind[kind]), kind, n)
		}
	}
	var crds []string
	for _, o := range byKind["CustomResourceDefinition"] {
		crds = append(crds, o.Object.GetName())
	}
	for _, want := range []string{"virtualservices.networking.istio.io", "authorizationpolicies.security.istio.io", "httproutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io"} {
		if !slices.Contains(crds, want) {
			t.Errorf("CRD %s missing (have %d CRDs)", want, len(crds))
		}
	}
	if objs[0].Object.GetKind() != "CustomResourceDefinition" {
		t.Errorf("first object is %s; CRDs come first", objs[0])
	}
	svc := byKind["Service"][0].Object
	if svc.GetName() != "istiod" {
		t.Errorf("Service is %q, want istiod", svc.GetName())
	}
	mut := byKind["MutatingWebhookConfiguration"][0].Object.Object
	hooks := mut["webhooks"].([]any)
	var sawEnabled bool
	for _, h := range hooks {
		h := h.(map[string]any)
		if h["failurePolicy"] != "Fail" {
			t.Errorf("webhook %v: failurePolicy %v", h["name"], h["failurePolicy"])
		}
		cc := h["clientConfig"].(map[string]any)
		if _, ok := cc["caBundle"]; ok {
			t.Errorf("webhook %v: caBundle set (the control plane owns it)", h["name"])
		}
		svc := cc["service"].(map[string]any)
		if svc["name"] != "istiod" || svc["namespace"] != "mesh" {
			t.Errorf("webhook %v: service %v", h["name"], svc)
		}
		if ns, ok := h["namespaceSelector"].(map[string]any)["matchLabels"].(map[string]any); ok && ns["istio-injection"] == "enabled" {
			sawEnabled = true
		}
	}
	if !sawEnabled {
		t.Error("no webhook selects namespaces labelled istio-injection=enabled")
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"namespace", Options{Namespace: "Bad_NS"}, `namespace "Bad_NS"`},
		{"revision", Options{Revision: "x.y"}, `revision "x.y"`},
		{"image", Options{Image: "a b"}, `image "a b"`},
		{"replicas", Options{Replicas: -1}, "replicas -1"},
		{"pull policy", Options{ImagePullPolicy: "Sometimes"}, `image pull policy "Sometimes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Objects(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestCRDsMatchModules fails when the embedded CRDs differ from the
// modules in go.mod (after a version bump: go generate ./internal/install).
func TestCRDsMatchModules(t *testing.T) {
	want, err := CRDSourceFiles(goListModule)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := fs.ReadDir(chart.CRDs, "crds")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
		data, _ := fs.ReadFile(chart.CRDs, "crds/"+e.Name())
		if w, ok := want[e.Name()]; !ok {
			t.Errorf("embedded crds/%s is in no module: run go generate ./internal/install", e.Name())
		} else if !bytes.Equal(data, w) {
			t.Errorf("embedded crds/%s differs from its module: run go generate ./internal/install", e.Name())
		}
	}
	for name := range want {
		if !slices.Contains(got, name) {
			t.Errorf("crds/%s missing: run go generate ./internal/install", name)
		}
	}
}

func goListModule(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func TestChartTemplateUpToDate(t *testing.T) {
	want, err := ChartTemplate()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir, "templates", "trellis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("manifests/charts/trellis/templates/trellis.yaml is stale: run go generate ./internal/install")
	}
}

// TestChartRendersLikeObjects renders the chart's template the way Helm
// does (text/template over .Release and .Values) and compares it with
// Objects for the same values.
func TestChartRendersLikeObjects(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(chartDir, "templates", "trellis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.New("trellis.yaml").Option("missingkey=error").Parse(string(src))
	if err != nil {
		t.Fatalf("parsing the chart template: %v", err)
	}
	valuesYAML, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var defaults map[string]any
	if err := yaml.Unmarshal(valuesYAML, &defaults); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	for _, tc := range []struct {
		name   string
		ns     string
		values map[string]any
		opts   Options
	}{
		{"defaults", "istio-system", defaults, Options{}},
		{"overridden", "mesh", map[string]any{"image": "registry.example/trellis:v2", "replicas": 2}, Options{Namespace: "mesh", Image: "registry.example/trellis:v2", Replicas: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tmpl.Execute(&b, map[string]any{"Release": map[string]any{"Namespace": tc.ns}, "Values": tc.values}); err != nil {
				t.Fatalf("rendering: %v", err)
			}
			objs, err := Objects(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var keep []Object
			for _, o := range WithoutCRDs(objs) {
				if o.Object.GetKind() != "Namespace" {
					keep = append(keep, o)
				}
			}
			want, err := Render(keep)
			if err != nil {
				t.Fatal(err)
			}
			got := bytes.TrimPrefix(b.Bytes(), []byte("# Generated by `go generate ./internal/install` from internal/install: do not edit.\n"))
			if !bytes.Equal(got, want) {
				t.Errorf("rendered chart differs from trellis manifest generate:\n--- chart\n%s\n--- objects\n%s", got, want)
			}
		})
	}
}

// TestRevisionsSideBySide checks that two revisions installed in one
// namespace share only the CRDs and the Namespace, and that each mutating
// webhook selects only its own revision's namespaces.
func TestRevisionsSideBySide(t *testing.T) {
	names := func(rev string) map[string]Object {
		objs, err := Objects(Options{Revision: rev})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]Object{}
		for _, o := range objs {
			out[o.String()] = o
		}
		return out
	}
	def, canary := names("default"), names("canary")
	for name, o := range canary {
		if _, shared := def[name]; shared && o.Resource.Resource != "customresourcedefinitions" && o.Resource.Resource != "namespaces" {
			t.Errorf("%s is in both revisions", name)
		}
	}
	mut, ok := canary["MutatingWebhookConfiguration trellis-sidecar-injector-canary"]
	if !ok {
		t.Fatal("no MutatingWebhookConfiguration trellis-sidecar-injector-canary")
	}
	hooks, _ := mut.Object.Object["webhooks"].([]any)
	if len(hooks) != 1 {
		t.Fatalf("canary has %d webhooks, want only rev.namespace.sidecar-injector.istio.io", len(hooks))
	}
	h := hooks[0].(map[string]any)
	sel, _ := yaml.Marshal(h["namespaceSelector"])
	if h["name"] != "rev.namespace.sidecar-injector.istio.io" || !strings.Contains(string(sel), "- canary") {
		t.Errorf("canary webhook %v selects namespaces %s", h["name"], sel)
	}
	svc, _ := yaml.Marshal(h["clientConfig"])
	if !strings.Contains(string(svc), "name: istiod-canary") {
		t.Errorf("canary webhook calls %s", svc)
	}
}
