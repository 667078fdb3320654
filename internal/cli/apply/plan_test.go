package apply

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const vsReviews = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`

const drReviews = `# subsets
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
`

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func runPlan(t *testing.T, dir, input string, fn func(string, []file, []object) (Plan, error)) ([]Change, error) {
	t.Helper()
	f, err := readFile("input.yaml", []byte(input), true)
	if err != nil {
		return nil, err
	}
	objs, err := objects([]file{f})
	if err != nil {
		return nil, err
	}
	cur, err := readDir(dir)
	if err != nil {
		return nil, err
	}
	p, err := fn(dir, cur, objs)
	if err != nil {
		return nil, err
	}
	return p.Changes, execute(p)
}

// TestApplyReplacesObjectInSharedFile: an object defined in a user's
// multi-document file moves to its managed file; the other documents,
// with their comments, stay.
func TestApplyReplacesObjectInSharedFile(t *testing.T) {
	dir := t.TempDir()
	shared := write(t, dir, "routing.yaml", drReviews+"---\n"+vsReviews)
	changes, err := runPlan(t, dir, strings.Replace(vsReviews, "subset: v1", "subset: v3", 1), planApply)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Action != "configured" || changes[0].Key.String() != "VirtualService default/reviews" {
		t.Fatalf("changes = %+v", changes)
	}
	if got, want := names(t, dir), []string{"routing.yaml", "virtualservice.default.reviews.yaml"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files = %v, want %v", got, want)
	}
	b, _ := os.ReadFile(shared)
	if string(b) != drReviews {
		t.Errorf("routing.yaml = %q, want only the DestinationRule with its comment", b)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "virtualservice.default.reviews.yaml"))
	if !strings.Contains(string(b), "subset: v3") {
		t.Errorf("managed file = %q", b)
	}
	// Applying the same again changes nothing.
	changes, err = runPlan(t, dir, strings.Replace(vsReviews, "subset: v1", "subset: v3", 1), planApply)
	if err != nil || changes[0].Action != "unchanged" {
		t.Errorf("second apply: %+v, %v", changes, err)
	}
}

func TestApplyCreates(t *testing.T) {
	dir := t.TempDir()
	changes, err := runPlan(t, dir, vsReviews, planApply)
	if err != nil || len(changes) != 1 || changes[0].Action != "created" {
		t.Fatalf("%+v, %v", changes, err)
	}
}

// TestApplyInvalid: a field error names the object and field, and
// nothing is written.
func TestApplyInvalid(t *testing.T) {
	dir := t.TempDir()
	bad := strings.Replace(vsReviews, "- destination: {host: reviews, subset: v1}", "- destination: {host: reviews, subset: v1}\n      weight: -1", 1)
	_, err := runPlan(t, dir, bad, planApply)
	if err == nil || !strings.Contains(err.Error(), "VirtualService default/reviews") || !strings.Contains(err.Error(), "weight") {
		t.Fatalf("err = %v, want the object and the weight field", err)
	}
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("files written: %v", n)
	}
	if _, err := runPlan(t, dir, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", planApply); err == nil || !strings.Contains(err.Error(), "no Istio configuration") {
		t.Errorf("a Kubernetes Service: %v", err)
	}
}

func TestDelete(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "vs.yaml", vsReviews)
	changes, err := runPlan(t, dir, vsReviews, planDelete)
	if err != nil || changes[0].Action != "deleted" {
		t.Fatalf("%+v, %v", changes, err)
	}
	if n := names(t, dir); len(n) != 0 {
		t.Errorf("files left: %v (the emptied file must go)", n)
	}
	changes, err = runPlan(t, dir, vsReviews, planDelete)
	if err != nil || changes[0].Action != "not found" {
		t.Errorf("second delete: %+v, %v", changes, err)
	}
}
