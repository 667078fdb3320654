package kubeinject

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// TestGolden runs the command over testdata/<case>.yaml and compares its
// output with testdata/<case>.golden.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"workloads", []string{"--image", "ghcr.io/trellismesh/trellis-proxy:test"}},
		{"workloads-no-ca", []string{"--image", "ghcr.io/trellismesh/trellis-proxy:test", "--no-ca", "--native-sidecar", "--image-pull-policy", "IfNotPresent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := run(t, "", append([]string{"-f", filepath.Join("testdata", "workloads.yaml")}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -update creates it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

// TestIdempotent feeds the command its own output: nothing changes.
func TestIdempotent(t *testing.T) {
	first, err := run(t, "", "-f", filepath.Join("testdata", "workloads.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := run(t, first, "-f", "-")
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("injecting twice changed the output:\n%s", second)
	}
}

func TestErrors(t *testing.T) {
	badAnn := `apiVersion: v1
kind: Service
metadata: {name: a}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {traffic.sidecar.istio.io/excludeInboundPorts: "http"}
    spec:
      containers: [{name: web, image: web}]
`
	unknown := "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containerz: []\n"
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"no file", "", nil, "-f is required"},
		{"missing file", "", []string{"-f", "testdata/none.yaml"}, "-f: open testdata/none.yaml"},
		{"bad annotation", badAnn, []string{"-f", "-"}, `-: document 2: Deployment web: annotation traffic.sidecar.istio.io/excludeInboundPorts: "http" is not a port`},
		{"unknown field", unknown, []string{"-f", "-"}, `document 1: Pod: error unmarshaling JSON`},
		{"pull policy", "", []string{"-f", "-", "--image-pull-policy", "Sometimes"}, `--image-pull-policy "Sometimes"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, tc.stdin, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
