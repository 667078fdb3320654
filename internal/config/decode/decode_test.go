package decode

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

func decodeString(s string) Result {
	return Decode(schema.Istio(), "test.yaml", []byte(s))
}

func TestBookinfoSamples(t *testing.T) {
	root := samples.Path(t, "bookinfo")
	files, err := filepath.Glob(filepath.Join(root, "networking", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found in %s: %v", root, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res := Decode(schema.Istio(), filepath.Base(f), data)
			if err := res.Err(); err != nil {
				t.Fatalf("unexpected errors:\n%v", err)
			}
			if len(res.Configs) == 0 || len(res.Skipped) != 0 {
				t.Fatalf("got %d configs and %d skipped", len(res.Configs), len(res.Skipped))
			}
			for i, c := range res.Configs {
				if c.Source.Document != i+1 || c.Source.File != filepath.Base(f) {
					t.Errorf("config %d has source %v", i, c.Source)
				}
			}
		})
	}

	t.Run("platform/bookinfo.yaml", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(root, "platform", "bookinfo.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		res := Decode(schema.Istio(), "bookinfo.yaml", data)
		if err := res.Err(); err != nil {
			t.Fatalf("unexpected errors:\n%v", err)
		}
		if len(res.Configs) != 0 || len(res.Skipped) == 0 {
			t.Fatalf("got %d configs and %d skipped", len(res.Configs), len(res.Skipped))
		}
		kinds := map[string]bool{}
		for _, s := range res.Skipped {
			kinds[s.APIVersion+" "+s.Kind] = true
			if s.Name == "" || s.Namespace != config.DefaultNamespace {
				t.Errorf("skipped object without name or namespace: %+v", s)
			}
		}
		for _, want := range []string{"v1 Service", "v1 ServiceAccount", "apps/v1 Deployment"} {
			if !kinds[want] {
				t.Errorf("%s not among skipped kinds %v", want, kinds)
			}
		}
	})
}

func TestBookinfoContent(t *testing.T) {
	data, err := os.ReadFile(samples.Path(t, "bookinfo/networking/virtual-service-reviews-80-20.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := Decode(schema.Istio(), "vs.yaml", data)
	if err := res.Err(); err != nil || len(res.Configs) != 1 {
		t.Fatalf("got %d configs, err %v", len(res.Configs), err)
	}
	c := res.Configs[0]
	want := config.Key{Kind: schema.VirtualService, Namespace: "default", Name: "reviews"}
	if c.Key() != want || c.Version != "v1" {
		t.Fatalf("key %v version %q", c.Key(), c.Version)
	}
	vs := c.Spec.(*networking.VirtualService)
	route := vs.GetHttp()[0].GetRoute()
	if len(route) != 2 || route[0].GetWeight() != 80 || route[1].GetDestination().GetSubset() != "v2" {
		t.Fatalf("unexpected spec %v", vs)
	}
}

func TestVersions(t *testing.T) {
	tests := []struct {
		apiVersion, kind string
		wantErr          string // empty: decodes
	}{
		{"networking.istio.io/v1", "VirtualService", ""},
		{"networking.istio.io/v1beta1", "VirtualService", ""},
		{"networking.istio.io/v1alpha3", "VirtualService", ""},
		{"networking.istio.io/v1", "DestinationRule", ""},
		{"networking.istio.io/v1beta1", "Gateway", ""},
		{"networking.istio.io/v1alpha3", "ServiceEntry", ""},
		{"networking.istio.io/v1", "WorkloadEntry", ""},
		{"networking.istio.io/v1alpha3", "WorkloadGroup", ""},
		{"networking.istio.io/v1beta1", "Sidecar", ""},
		{"security.istio.io/v1", "PeerAuthentication", ""},
		{"security.istio.io/v1beta1", "PeerAuthentication", ""},
		{"security.istio.io/v1", "AuthorizationPolicy", ""},
		{"security.istio.io/v1beta1", "AuthorizationPolicy", ""},
		{"security.istio.io/v1", "RequestAuthentication", ""},
		{"security.istio.io/v1beta1", "RequestAuthentication", ""},
		{"networking.istio.io/v2", "VirtualService", `apiVersion: version "v2" of VirtualService.networking.istio.io is not served (served: v1, v1beta1, v1alpha3)`},
		{"security.istio.io/v1alpha3", "AuthorizationPolicy", `version "v1alpha3" of AuthorizationPolicy.security.istio.io is not served`},
		{"networking.istio.io/v1", "EnvoyFilter", `kind: kind "EnvoyFilter" is not supported in group networking.istio.io`},
		{"networking.istio.io/v1", "VirtualServce", `kind "VirtualServce" is not supported`},
	}
	for _, tt := range tests {
		t.Run(tt.apiVersion+"/"+tt.kind, func(t *testing.T) {
			res := decodeString("apiVersion: " + tt.apiVersion + "\nkind: " + tt.kind + "\nmetadata:\n  name: x\n")
			if tt.wantErr == "" {
				if err := res.Err(); err != nil || len(res.Configs) != 1 {
					t.Fatalf("got %d configs, err %v", len(res.Configs), err)
				}
				c := res.Configs[0]
				if c.Kind.Kind != tt.kind || c.Version != tt.apiVersion[strings.Index(tt.apiVersion, "/")+1:] {
					t.Errorf("got kind %v version %q", c.Kind, c.Version)
				}
				sc, _ := schema.Istio().Get(c.Kind)
				if proto.MessageName(c.Spec) != proto.MessageName(sc.New()) {
					t.Errorf("spec type %T", c.Spec)
				}
				return
			}
			if len(res.Configs) != 0 || len(res.Errors) != 1 {
				t.Fatalf("got %d configs, errors %v", len(res.Configs), res.Err())
			}
			if !strings.Contains(res.Errors[0].Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", res.Errors[0], tt.wantErr)
			}
		})
	}
}

func TestMetadata(t *testing.T) {
	const head = "apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
	t.Run("defaults and fields", func(t *testing.T) {
		res := decodeString(head + `metadata:
  name: a.b-c
  labels: {app: x}
  annotations: {note: "1"}
  resourceVersion: "42"
  generation: 3
  creationTimestamp: "2024-05-01T10:00:00Z"
  uid: 0faa11c9
  managedFields: []
status: {}
`)
		if err := res.Err(); err != nil || len(res.Configs) != 1 {
			t.Fatalf("got %d configs, err %v", len(res.Configs), err)
		}
		m := res.Configs[0].Meta
		if m.Namespace != "default" || m.Name != "a.b-c" || m.Labels["app"] != "x" || m.Annotations["note"] != "1" ||
			m.ResourceVersion != "42" || m.Generation != 3 || !m.CreationTimestamp.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) {
			t.Fatalf("unexpected meta %+v", m)
		}
	})
	t.Run("namespace", func(t *testing.T) {
		res := decodeString(head + "metadata: {name: a, namespace: istio-system}\n")
		if len(res.Configs) != 1 || res.Configs[0].Namespace != "istio-system" {
			t.Fatalf("got %+v, %v", res.Configs, res.Err())
		}
	})
	tests := []struct {
		name, meta, field, reason string
	}{
		{"missing name", "metadata: {namespace: a}", "metadata.name", "required"},
		{"missing metadata", "", "metadata.name", "required"},
		{"generateName", "metadata: {generateName: a-}", "metadata.name", "generateName is not supported"},
		{"upper case name", "metadata: {name: Reviews}", "metadata.name", `invalid name "Reviews"`},
		{"underscore name", "metadata: {name: a_b}", "metadata.name", "lower case alphanumeric"},
		{"long name", "metadata: {name: " + strings.Repeat("a", 254) + "}", "metadata.name", "253"},
		{"bad namespace", "metadata: {name: a, namespace: a.b}", "metadata.namespace", `invalid namespace "a.b"`},
		{"numeric name", "metadata: {name: 12}", "metadata.name", "must be a string"},
		{"metadata list", "metadata: [a]", "metadata", "must be an object"},
		{"label not string", "metadata: {name: a, labels: {v: 1.0}}", "metadata.labels[v]", "must be a string, not number 1"},
		{"label bool", "metadata: {name: a, labels: {v: yes}}", "metadata.labels[v]", "boolean true"},
		{"bad timestamp", "metadata: {name: a, creationTimestamp: yesterday}", "metadata.creationTimestamp", "RFC 3339"},
		{"bad generation", "metadata: {name: a, generation: x}", "metadata.generation", "must be an integer"},
		{"unknown metadata field", "metadata: {name: a, namspace: b}", "metadata.namspace", `unknown field "namspace"`},
		{"unknown top field", "metadata: {name: a}\nspce: {}", "spce", `unknown field "spce"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeString(head + tt.meta + "\n")
			if len(res.Configs) != 0 || len(res.Errors) == 0 {
				t.Fatalf("got %d configs, errors %v", len(res.Configs), res.Err())
			}
			e := res.Errors[0]
			if e.Field != tt.field || !strings.Contains(e.Reason, tt.reason) || e.Kind != "Sidecar" {
				t.Fatalf("got %q (field %q reason %q kind %q), want field %q reason containing %q", e, e.Field, e.Reason, e.Kind, tt.field, tt.reason)
			}
		})
	}
}

func TestSpecErrors(t *testing.T) {
	const head = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n"
	tests := []struct {
		name, spec, field, reason string
	}{
		{"unknown field", "  hosts: [a]\n  foo: 1", "spec.foo", `unknown field "foo"`},
		{"unknown field suggestion", "  hots: [a]", "spec.hots", `unknown field "hots" (did you mean "hosts"?)`},
		{"nested unknown field", "  http:\n  - route:\n    - destination: {host: a, subst: v1}", "spec.http[0].route[0].destination.subst", `(did you mean "subset"?)`},
		{"bad duration", "  http:\n  - timeout: 5x", "spec.http[0].timeout", `invalid duration "5x"`},
		{"duration number", "  http:\n  - timeout: 5", "spec.http[0].timeout", `invalid duration number 5`},
		{"string for list", "  hosts: a", "spec.hosts", "must be a list, not string"},
		{"number for string", "  hosts: [1]", "spec.hosts[0]", `invalid value number 1: want a string`},
		{"null list element", "  hosts: [~]", "spec.hosts[0]", "must not be null"},
		{"negative port", "  http:\n  - route:\n    - destination: {host: a, port: {number: -1}}", "spec.http[0].route[0].destination.port.number", "between 0 and 4294967295"},
		{"quoted port", "  http:\n  - route:\n    - destination: {host: a, port: {number: \"80\"}}", "spec.http[0].route[0].destination.port.number", `invalid value "80"`},
		{"fractional weight", "  http:\n  - route:\n    - weight: 1.5", "spec.http[0].route[0].weight", "integer"},
		{"oneof conflict", "  http:\n  - match:\n    - uri: {exact: /a, prefix: /b}", "spec.http[0].match[0].uri.prefix", "only one of exact, prefix, regex"},
		{"object for scalar", "  http:\n  - name: {a: b}", "spec.http[0].name", "want a string"},
		{"bool", "  http:\n  - match:\n    - ignoreUriCase: 1", "spec.http[0].match[0].ignoreUriCase", "want true or false"},
		{"header map value", "  http:\n  - match:\n    - headers: {x-a: exact}", "spec.http[0].match[0].headers[x-a]", "must be an object"},
		{"field twice", "  exportTo: [a]\n  export_to: [b]", "spec.export_to", "set twice"},
		{"spec not object", "  - a", "spec", "must be an object, not a list"},
		{"enum", "  http:\n  - redirect: {derivePort: FROM_NOWHERE}", "spec.http[0].redirect.derivePort", "want one of FROM_PROTOCOL_DEFAULT, FROM_REQUEST_PORT"},
		{"enum number", "  http:\n  - redirect: {derivePort: 1}", "spec.http[0].redirect.derivePort", "invalid value number 1"},
		{"wrapper", "  http:\n  - retries: {retryRemoteLocalities: maybe}", "spec.http[0].retries.retryRemoteLocalities", "want true or false"},
		{"protojson fallback", "  http:\n  - directResponse: {status: 200, body: {bytes: \"!!!\"}}", "spec.http[0].directResponse.body.bytes", "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeString(head + tt.spec + "\n")
			if len(res.Configs) != 0 || len(res.Errors) == 0 {
				t.Fatalf("got %d configs, errors %v", len(res.Configs), res.Err())
			}
			e := res.Errors[0]
			if e.Field != tt.field || !strings.Contains(e.Reason, tt.reason) {
				t.Fatalf("got %q, want field %q reason containing %q", e, tt.field, tt.reason)
			}
			if e.Kind != "VirtualService" || e.Namespace != "default" || e.Name != "reviews" || e.Source.Document != 1 {
				t.Fatalf("error does not identify the object: %+v", e)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	res := Decode(schema.Istio(), "bookinfo.yaml", []byte(`apiVersion: v1
kind: Service
metadata: {name: a}
---
apiVersion: v1
kind: Service
metadata: {name: b}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  http:
  - timeout: 5x
`))
	if len(res.Errors) != 1 {
		t.Fatalf("errors: %v", res.Err())
	}
	want := `bookinfo.yaml document 3: VirtualService default/reviews: spec.http[0].timeout: invalid duration "5x"`
	if got := res.Errors[0].Error(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := (&Error{Source: config.Source{File: "f"}, Reason: "r"}).Error(); got != "f: r" {
		t.Fatalf("file-level error formats as %q", got)
	}
}

func TestDurations(t *testing.T) {
	res := decodeString(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec:
  host: a
  trafficPolicy:
    connectionPool:
      tcp: {connectTimeout: 30ms, idleTimeout: 1h}
    outlierDetection: {interval: 1m30s, baseEjectionTime: "2.5s"}
`)
	if err := res.Err(); err != nil || len(res.Configs) != 1 {
		t.Fatalf("got %d configs, err %v", len(res.Configs), err)
	}
	tp := res.Configs[0].Spec.(*networking.DestinationRule).GetTrafficPolicy()
	got := []time.Duration{
		tp.GetConnectionPool().GetTcp().GetConnectTimeout().AsDuration(),
		tp.GetConnectionPool().GetTcp().GetIdleTimeout().AsDuration(),
		tp.GetOutlierDetection().GetInterval().AsDuration(),
		tp.GetOutlierDetection().GetBaseEjectionTime().AsDuration(),
	}
	want := []time.Duration{30 * time.Millisecond, time.Hour, 90 * time.Second, 2500 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("duration %d: got %v want %v", i, got[i], want[i])
		}
	}
	for d, want := range map[time.Duration]string{0: "0s", time.Second: "1s", -1500 * time.Millisecond: "-1.5s", time.Nanosecond: "0.000000001s", -1 << 63: "-9223372036.854775808s"} {
		if got := protoDuration(d); got != want {
			t.Errorf("protoDuration(%d) = %q, want %q", d, got, want)
		}
	}
}

func TestDocuments(t *testing.T) {
	const vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: %s}\nspec: {hosts: [a]}\n"
	obj := func(name string) string { return strings.Replace(vs, "%s", name, 1) }
	tests := []struct {
		name      string
		in        string
		names     []string // decoded objects, in order
		documents []int    // their document numbers
		errs      []string // error fragments, in order
	}{
		{name: "empty file", in: ""},
		{name: "only comments", in: "# nothing\n---\n# here\n"},
		{name: "leading separator", in: "---\n" + obj("a"), names: []string{"a"}, documents: []int{1}},
		{name: "empty documents are not counted", in: "---\n---\n# c\n---\n" + obj("a") + "---\n\n---\n" + obj("b") + "---\n", names: []string{"a", "b"}, documents: []int{1, 2}},
		{name: "null document", in: "~\n---\n" + obj("a"), names: []string{"a"}, documents: []int{2}},
		{name: "separator with comment", in: obj("a") + "--- # next\n" + obj("b"), names: []string{"a", "b"}, documents: []int{1, 2}},
		{name: "CRLF", in: strings.ReplaceAll(obj("a")+"---\n"+obj("b"), "\n", "\r\n"), names: []string{"a", "b"}, documents: []int{1, 2}},
		{name: "byte order mark", in: "\xEF\xBB\xBF" + obj("a"), names: []string{"a"}, documents: []int{1}},
		{name: "one bad document", in: obj("a") + "---\nfoo: [\n---\n" + obj("b"), names: []string{"a", "b"}, documents: []int{1, 3}, errs: []string{"test.yaml document 2: invalid YAML: line 6: did not find expected node content"}},
		{name: "content after separator", in: obj("a") + "--- {a: b}\n---\n" + obj("b"), names: []string{"a", "b"}, documents: []int{1, 3}, errs: []string{`document 2: line 5: content after the document separator`}},
		{name: "document end marker then more", in: obj("a") + "...\n" + obj("b"), errs: []string{"line 5: did not find expected <document start>"}},
		{name: "duplicate key", in: "apiVersion: v1\napiVersion: v1\n", errs: []string{`document 1: invalid YAML: line 2: key "apiVersion" already set in map`}},
		{name: "not a mapping", in: "- a\n- b\n", errs: []string{"document must be a mapping"}},
		{name: "scalar document", in: "hello\n", errs: []string{"document must be a mapping"}},
		{name: "missing apiVersion and kind", in: "metadata: {name: a}\n", errs: []string{"document 1: apiVersion: required", "document 1: kind: required"}},
		{name: "bad apiVersion", in: "apiVersion: a/b/c\nkind: X\n", errs: []string{`apiVersion: must be "group/version"`}},
		{name: "numeric kind", in: "apiVersion: v1\nkind: 3\n", errs: []string{"kind: must be a non-empty string, not number 3"}},
		{name: "tab indentation", in: "apiVersion: v1\nkind: List\nitems:\n\t- a\n", errs: []string{"invalid YAML: line 4"}},
		{name: "NaN", in: "apiVersion: v1\nkind: X\nx: .nan\n", errs: []string{"x: unsupported number NaN"}},
		{name: "null key", in: "~: a\n", errs: []string{"null mapping key"}},
		{name: "binary garbage", in: "\x00\x01\xfe\xff", errs: []string{"invalid YAML"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeString(tt.in)
			var names []string
			var docs []int
			for _, c := range res.Configs {
				names = append(names, c.Name)
				docs = append(docs, c.Source.Document)
			}
			if strings.Join(names, ",") != strings.Join(tt.names, ",") || !equalInts(docs, tt.documents) {
				t.Errorf("decoded %v in documents %v, want %v in %v", names, docs, tt.names, tt.documents)
			}
			if len(res.Errors) != len(tt.errs) {
				t.Fatalf("got errors %v, want %d", res.Err(), len(tt.errs))
			}
			for i, e := range res.Errors {
				if !strings.Contains(e.Error(), tt.errs[i]) {
					t.Errorf("error %d is %q, want it to contain %q", i, e, tt.errs[i])
				}
			}
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLists(t *testing.T) {
	t.Run("kubectl List", func(t *testing.T) {
		res := decodeString(`apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: a, namespace: ns1}
  spec: {hosts: [a]}
- apiVersion: v1
  kind: Service
  metadata: {name: svc}
- apiVersion: security.istio.io/v1
  kind: PeerAuthentication
  metadata: {name: b}
  spec: {mtls: {mode: BOGUS}}
- apiVersion: security.istio.io/v1beta1
  kind: AuthorizationPolicy
  metadata: {name: c}
`)
		if len(res.Configs) != 2 || res.Configs[0].Key().String() != "VirtualService ns1/a" || res.Configs[1].Name != "c" {
			t.Fatalf("configs %v", res.Configs)
		}
		if len(res.Skipped) != 1 || res.Skipped[0].Name != "svc" {
			t.Fatalf("skipped %v", res.Skipped)
		}
		if len(res.Errors) != 1 {
			t.Fatalf("errors %v", res.Err())
		}
		want := `test.yaml document 1: PeerAuthentication default/b: items[2].spec.mtls.mode: invalid value "BOGUS"`
		if got := res.Errors[0].Error(); !strings.HasPrefix(got, want) {
			t.Fatalf("got %q, want prefix %q", got, want)
		}
		if _, ok := res.Configs[1].Spec.(*security.AuthorizationPolicy); !ok {
			t.Fatalf("spec %T", res.Configs[1].Spec)
		}
	})
	t.Run("typed list", func(t *testing.T) {
		res := decodeString(`apiVersion: networking.istio.io/v1
kind: VirtualServiceList
items:
- metadata: {name: a}
  spec: {hosts: [a]}
- metadata: {name: b}
`)
		if err := res.Err(); err != nil || len(res.Configs) != 2 || res.Configs[1].Kind != schema.VirtualService || res.Configs[1].Version != "v1" {
			t.Fatalf("configs %v, err %v", res.Configs, err)
		}
	})
	tests := []struct{ name, in, want string }{
		{"nested list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items: []\n", "items[0].kind: a List may not contain another List"},
		{"items not list", "apiVersion: v1\nkind: List\nitems: {a: b}\n", "items: must be a list"},
		{"item not object", "apiVersion: v1\nkind: List\nitems: [3]\n", "items[0]: must be an object"},
		{"unknown list field", "apiVersion: v1\nkind: List\nitem: []\n", `item: unknown field "item"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := decodeString(tt.in)
			if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), tt.want) {
				t.Fatalf("got %v, want %q", res.Err(), tt.want)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"file too large", strings.Repeat("#", MaxFileSize+1), "test.yaml: file is too large"},
		{"too many documents", strings.Repeat("a: 1\n---\n", MaxObjects+1), "too many documents"},
		{"too many list items", "apiVersion: v1\nkind: List\nitems:\n" + strings.Repeat("- {apiVersion: v1, kind: Service}\n", MaxObjects), "items[9999]: too many objects"},
		{"document too large", "a: \"" + strings.Repeat("x", MaxDocumentSize) + "\"\n", "document 1: document is too large"},
		{"deep nesting", "a: " + strings.Repeat("[", 100) + strings.Repeat("]", 100), "nesting is deeper than 64 levels"},
		{"very deep nesting", "a: " + strings.Repeat("[", 20000), "invalid YAML"},
		{"alias bomb", `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`, "excessive aliasing"},
		{"many errors", "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: a}\nspec:\n" + strings.Repeat("  x", 1) + "0: 1\n" + func() string {
			var b strings.Builder
			for i := 1; i < 50; i++ {
				b.WriteString("  x" + strings.Repeat("y", i) + ": 1\n")
			}
			return b.String()
		}(), "too many errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			res := decodeString(tt.in)
			if len(res.Configs) != 0 || len(res.Errors) == 0 {
				t.Fatalf("got %d configs, errors %v", len(res.Configs), res.Err())
			}
			if len(res.Errors) > maxErrorsPerDocument {
				t.Fatalf("%d errors", len(res.Errors))
			}
			last := res.Errors[len(res.Errors)-1].Error()
			if !strings.Contains(last, tt.want) {
				t.Fatalf("got %q, want it to contain %q", last, tt.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestProtoErrorPath(t *testing.T) {
	data := []byte(`{"a":[1,{"b":"x","c\"d":[true]}],"e":"ü","f":2}`)
	// column returns the 1-based rune column of the n-th occurrence of sub,
	// as protojson reports positions.
	column := func(sub string, n int) int {
		off := 0
		for ; n > 0; n-- {
			off += strings.Index(string(data[off:]), sub) + 1
		}
		return utf8.RuneCount(data[:off-1]) + 1
	}
	tests := []struct {
		at   string
		n    int
		want fieldPath
	}{
		{"{", 1, "spec"},
		{`"a"`, 1, "spec.a"},
		{"[", 1, "spec.a"},
		{"1", 1, "spec.a[0]"},
		{"{", 2, "spec.a[1]"},
		{`"b"`, 1, "spec.a[1].b"},
		{`"x"`, 1, "spec.a[1].b"},
		{`"c`, 1, `spec.a[1].c"d`},
		{"true", 1, `spec.a[1].c"d[0]`},
		{"rue", 1, `spec.a[1].c"d[0]`},
		{`"e"`, 1, "spec.e"},
		{`"ü"`, 1, "spec.e"},
		{`"f"`, 1, "spec.f"},
		{"2", 1, "spec.f"},
	}
	for _, tt := range tests {
		col := column(tt.at, tt.n)
		s := jsonScanner{data: data, target: offset(data, 1, col)}
		got, _ := s.value("spec")
		if got != tt.want {
			t.Errorf("%q #%d (column %d): got %q, want %q", tt.at, tt.n, col, got, tt.want)
		}
	}
	msg := fmt.Sprintf("proto:\u00a0(line 1:%d): unknown field \"b\"", column(`"b"`, 1))
	field, reason := protoError(errorString(msg), data, "spec")
	if field != "spec.a[1].b" || reason != `unknown field "b"` {
		t.Errorf("got %q %q", field, reason)
	}
	field, reason = protoError(errorString("proto: exceeded max recursion depth"), data, "spec")
	if field != "spec" || reason != "exceeded max recursion depth" {
		t.Errorf("got %q %q", field, reason)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestSplit(t *testing.T) {
	docs := split([]byte("a: 1\n---\n\n---\nb: 2\n----\nc: 3\n---x\n"))
	if len(docs) != 2 || docs[0].line != 1 || docs[1].line != 5 || string(docs[1].data) != "b: 2\n----\nc: 3\n---x\n" {
		t.Fatalf("got %+v", docs)
	}
}
