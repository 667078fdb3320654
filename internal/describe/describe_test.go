package describe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/analysis"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/<name>, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// copyFile copies src into dir/name.
func copyFile(t *testing.T, src, dir, name string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// meshDir builds the test mesh: Bookinfo's local services
// (examples/bookinfo/config/services.yaml), Istio's destination-rule-all,
// virtual-service-reviews-test-v2 and virtual-service-ratings-test-delay
// samples, and testdata/mesh (mTLS, authorization, a mesh-wide rule, a
// gateway-only route).
func meshDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, filepath.Join("..", "..", "examples", "bookinfo", "config", "services.yaml"), dir, "services.yaml")
	for _, s := range []string{"destination-rule-all.yaml", "virtual-service-reviews-test-v2.yaml", "virtual-service-ratings-test-delay.yaml"} {
		copyFile(t, samples.Path(t, "bookinfo/networking/"+s), dir, s)
	}
	copyFile(t, filepath.Join("testdata", "mesh", "security.yaml"), dir, "security.yaml")
	return dir
}

// load reads dir as the CLI does and returns the input with file names
// made relative to dir (stable goldens).
func load(t *testing.T, dir string) Input {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	in, err := analysis.Load(ctx, analysis.LoadConfig{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	return Input{Snapshot: in.Snapshot, Messages: analysis.Analyze(in)}
}

func stable(b []byte, dir string) []byte {
	return bytes.ReplaceAll(b, []byte(dir+string(filepath.Separator)), nil)
}

func TestServiceGolden(t *testing.T) {
	dir := meshDir(t)
	in := load(t, dir)
	for _, tc := range []struct {
		name string
		arg  string
		ns   string
		from Viewpoint
	}{
		{name: "service-reviews", arg: "reviews", ns: "default"},
		{name: "service-ratings-port", arg: "ratings.default:9080", ns: "other"},
		{name: "service-details-fqdn", arg: "details.default.svc.cluster.local", from: Viewpoint{Namespace: "istio-system"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref, err := ParseServiceRef(tc.arg, tc.ns)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Service(in, ref, tc.from)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := WriteService(&buf, r); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".golden", stable(buf.Bytes(), dir))
		})
	}
}

func TestServiceJSONGolden(t *testing.T) {
	dir := meshDir(t)
	r, err := Service(load(t, dir), ServiceRef{Host: "reviews", Namespace: "default"}, Viewpoint{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "service-reviews.json.golden", stable(append(b, '\n'), dir))
}

func TestWorkloadGolden(t *testing.T) {
	dir := meshDir(t)
	in := load(t, dir)
	for _, name := range []string{"reviews-v1", "productpage-v1"} {
		t.Run(name, func(t *testing.T) {
			r, err := Workload(in, "default", name)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := WriteWorkload(&buf, r); err != nil {
				t.Fatal(err)
			}
			golden(t, "workload-"+name+".golden", stable(buf.Bytes(), dir))
		})
	}
}

// TestExplanations checks the decisions the goldens show, so that a wrong
// golden cannot be accepted by -update unnoticed.
func TestExplanations(t *testing.T) {
	in := load(t, meshDir(t))
	r, err := Service(in, ServiceRef{Host: "reviews", Namespace: "default"}, Viewpoint{})
	if err != nil {
		t.Fatal(err)
	}
	applied := map[string]bool{}
	for _, vs := range r.VirtualServices {
		applied[vs.Ref()] = vs.Applies
	}
	if !applied["default/reviews"] || applied["default/reviews-edge"] {
		t.Errorf("VirtualServices applied = %v, want default/reviews only", applied)
	}
	if r.DestinationRule == nil || r.DestinationRule.Ref() != "default/reviews" {
		t.Fatalf("DestinationRule = %+v, want default/reviews", r.DestinationRule)
	}
	if len(r.OtherDestinationRules) != 1 || r.OtherDestinationRules[0].Ref() != "istio-system/mesh-default" ||
		!strings.Contains(r.OtherDestinationRules[0].Reason, "looked up after default") {
		t.Errorf("other rules = %+v, want istio-system/mesh-default shadowed by namespace order", r.OtherDestinationRules)
	}
	modes := map[string]string{}
	for _, m := range r.MTLS {
		modes[m.Workload] = m.Mode + " " + m.Level + " " + m.Policy
	}
	want := map[string]string{
		"reviews-v1": "DISABLE port default/reviews-v1-plaintext",
		"reviews-v2": "STRICT namespace default/default",
		"reviews-v3": "STRICT namespace default/default",
	}
	for w, m := range want {
		if modes[w] != m {
			t.Errorf("mTLS of %s = %q, want %q", w, modes[w], m)
		}
	}
	if len(r.Authorization) != 2 || r.Authorization[0].Action != "DENY" || r.Authorization[1].Ref() != "default/reviews-viewer" {
		t.Errorf("authorization = %+v, want DENY istio-system/deny-delete then ALLOW default/reviews-viewer", r.Authorization)
	}

	// ratings: the rule's subsets without workloads are flagged by
	// analysis, and the messages name the rule.
	rt, err := Service(in, ServiceRef{Host: "ratings", Namespace: "default"}, Viewpoint{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range rt.Messages {
		found = found || (m.Code == "IST0173" && m.Origin.Name == "ratings")
	}
	if !found {
		t.Errorf("ratings messages lack IST0173 for DestinationRule ratings: %v", rt.Messages)
	}
	var fault bool
	for _, vs := range rt.VirtualServices {
		for _, rr := range vs.Routes {
			for _, a := range rr.Actions {
				fault = fault || strings.HasPrefix(a, "fault: delay 7s")
			}
		}
	}
	if !fault {
		t.Errorf("ratings routes lack the 7s delay fault: %+v", rt.VirtualServices)
	}
}

func TestErrors(t *testing.T) {
	in := load(t, meshDir(t))
	var nf *NotFoundError
	if _, err := Service(in, ServiceRef{Host: "reviewz", Namespace: "default"}, Viewpoint{}); !errors.As(err, &nf) ||
		!strings.Contains(err.Error(), "reviews.default.svc.cluster.local") {
		t.Errorf("unknown service: %v, want NotFoundError listing known hosts", err)
	}
	if _, err := Service(in, ServiceRef{Host: "reviews", Port: 80, Namespace: "default"}, Viewpoint{}); err == nil ||
		!strings.Contains(err.Error(), "has no port 80 (ports: 9080)") {
		t.Errorf("unknown port: %v", err)
	}
	if _, err := Workload(in, "default", "reviews-v9"); !errors.As(err, &nf) || !strings.Contains(err.Error(), "default/reviews-v1") {
		t.Errorf("unknown workload: %v", err)
	}
	for _, bad := range []string{"reviews:x", "reviews:0", ":9080"} {
		if _, err := ParseServiceRef(bad, "default"); err == nil {
			t.Errorf("ParseServiceRef(%q) accepted", bad)
		}
	}
}
