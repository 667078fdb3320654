package validation_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/decode"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/validation"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

// testCase is one named rule check. The spec is YAML (flow style keeps the
// tables compact); field empty means the object must be valid without
// warnings.
type testCase struct {
	name   string
	spec   string
	field  string // path of the expected finding
	reason string // fragment of its reason
	warn   bool   // the finding is a warning rather than an error
	meta   string // extra metadata entries, flow style without braces
}

// objectYAML builds a document of the kind in namespace "ns" named "test".
func objectYAML(kind, meta, spec string) string {
	apiVersion := "networking.istio.io/v1"
	switch kind {
	case "PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication":
		apiVersion = "security.istio.io/v1"
	}
	if meta != "" {
		meta = ", " + meta
	}
	return fmt.Sprintf("apiVersion: %s\nkind: %s\nmetadata: {name: test, namespace: ns%s}\nspec: %s\n", apiVersion, kind, meta, spec)
}

func mustDecode(t testing.TB, doc string) config.Config {
	t.Helper()
	res := decode.Decode(schema.Istio(), "test.yaml", []byte(doc))
	if err := res.Err(); err != nil || len(res.Configs) != 1 {
		t.Fatalf("test input does not decode (%d configs): %v\n%s", len(res.Configs), err, doc)
	}
	return res.Configs[0]
}

func runCases(t *testing.T, kind string, cases []testCase) {
	t.Helper()
	names := map[string]bool{}
	for _, tc := range cases {
		if names[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			c := mustDecode(t, objectYAML(kind, tc.meta, tc.spec))
			warnings, err := validation.Validate(c)
			var errs validation.Errors
			if err != nil && !errors.As(err, &errs) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if tc.field == "" {
				if err != nil || len(warnings) > 0 {
					t.Fatalf("want valid, got errors %v and warnings %v", err, warnings.Strings())
				}
				return
			}
			findings := []*validation.FieldError(errs)
			what := "error"
			if tc.warn {
				findings, what = warnings, "warning"
			}
			for _, f := range findings {
				if f.Field == tc.field && strings.Contains(f.Reason, tc.reason) {
					return
				}
			}
			t.Fatalf("no %s at %q containing %q\nerrors:   %v\nwarnings: %v", what, tc.field, tc.reason, err, warnings.Strings())
		})
	}
}

func TestBookinfoSamplesAreValid(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(samples.Path(t, "bookinfo/networking"), "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	// Istio also warns about this sample: its second route can never match.
	expectedWarnings := map[string]string{
		"fault-injection-details-v1.yaml VirtualService default/details": "spec.http[1]: route is never used",
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res := decode.Decode(schema.Istio(), filepath.Base(f), data)
		if err := res.Err(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, c := range res.Configs {
			id := filepath.Base(f) + " " + c.Key().String()
			warnings, err := validation.Validate(c)
			if err != nil {
				t.Errorf("%s: %v", id, err)
			}
			got := strings.Join(warnings.Strings(), "; ")
			if want := expectedWarnings[id]; !strings.HasPrefix(got, want) || (want == "") != (got == "") {
				t.Errorf("%s: warnings %q, want %q", id, got, want)
			}
		}
	}
}

func TestErrorsType(t *testing.T) {
	c := mustDecode(t, objectYAML("VirtualService", "", "{hosts: [a_b, c_d]}"))
	_, err := validation.Validate(c)
	var errs validation.Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("got %v", err)
	}
	var fe *validation.FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.hosts[0]" {
		t.Fatalf("errors.As(*FieldError) = %v", fe)
	}
	want := `spec.hosts[0]: invalid hostname "a_b": label "a_b" is not a valid DNS-1123 label; ` +
		`spec.hosts[1]: invalid hostname "c_d": label "c_d" is not a valid DNS-1123 label; ` +
		`spec: at least one http, tcp or tls route is required`
	if err.Error() != want {
		t.Fatalf("got  %s\nwant %s", err, want)
	}
	if _, err := validation.Validate(config.Config{Meta: config.Meta{Name: "a"}}); err == nil || err.Error() != "spec: required" {
		t.Fatalf("nil spec: %v", err)
	}
	if _, err := validation.Validate(config.Config{Spec: (*networking.VirtualService)(nil)}); err == nil || err.Error() != "spec: required" {
		t.Fatalf("typed nil spec: %v", err)
	}
	w, err := validation.Validate(mustDecode(t, objectYAML("Sidecar", "", "{workloadSelector: {}, egress: [{hosts: ['*/*']}]}")))
	if err != nil || len(w) != 1 || w.Strings()[0] != "spec.workloadSelector: workload selector without labels applies the sidecar to every workload in the namespace" {
		t.Fatalf("warnings %v, err %v", w.Strings(), err)
	}
}

func TestMetadata(t *testing.T) {
	const vs = "{hosts: [a], http: [{route: [{destination: {host: a}}]}]}"
	const ap = "{action: DENY, rules: [{to: [{operation: {ports: ['80']}}]}]}"
	tests := []struct {
		name, kind, meta, spec, field, reason string
	}{
		{"valid labels", "VirtualService", "labels: {app: a, example.com/tier: '', v: 1.0-a}", vs, "", ""},
		{"label key", "VirtualService", "labels: {'a b': c}", vs, "metadata.labels[a b]", "invalid key"},
		{"label key prefix", "VirtualService", "labels: {'a_b/c': d}", vs, "metadata.labels[a_b/c]", "invalid key"},
		{"label name too long", "VirtualService", "labels: {" + strings.Repeat("a", 64) + ": b}", vs, "metadata.labels[" + strings.Repeat("a", 64) + "]", "longer than 63"},
		{"label value", "VirtualService", "labels: {a: -b}", vs, "metadata.labels[a]", "invalid label value"},
		{"label value too long", "VirtualService", "labels: {a: " + strings.Repeat("b", 64) + "}", vs, "metadata.labels[a]", "longer than 63"},
		{"annotation key", "VirtualService", "annotations: {'a b': c}", vs, "metadata.annotations[a b]", "invalid key"},
		{"annotations too large", "VirtualService", "annotations: {a: " + strings.Repeat("b", 256<<10) + "}", vs, "metadata.annotations", "too large"},
		{"dry-run", "AuthorizationPolicy", "annotations: {istio.io/dry-run: 'true'}", ap, "", ""},
		{"dry-run value", "AuthorizationPolicy", "annotations: {istio.io/dry-run: maybe}", ap, "metadata.annotations[istio.io/dry-run]", "want true or false"},
		{"dry-run kind", "VirtualService", "annotations: {istio.io/dry-run: 'true'}", vs, "metadata.annotations[istio.io/dry-run]", "only AuthorizationPolicy"},
		{"dry-run action", "AuthorizationPolicy", "annotations: {istio.io/dry-run: 'true'}", "{action: AUDIT, rules: [{}]}", "metadata.annotations[istio.io/dry-run]", "ALLOW and DENY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runCases(t, tt.kind, []testCase{{name: tt.name, meta: tt.meta, spec: tt.spec, field: tt.field, reason: tt.reason}})
		})
	}
}
