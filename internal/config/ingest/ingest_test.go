package ingest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
)

// problems splits a decode or validate error into the Problems it joins,
// failing if any part is not a store.Problem.
func problems(t *testing.T, err error) []store.Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var out []store.Problem
	for _, e := range errs {
		var p store.Problem
		if !errors.As(e, &p) {
			t.Fatalf("error %q (%T) is not a store.Problem", e, e)
		}
		out = append(out, p)
	}
	return out
}

func key(kind config.GroupKind, ns, name string) config.Key {
	return config.Key{Kind: kind, Namespace: ns, Name: name}
}

func TestDecoder(t *testing.T) {
	// wantProblem lists what each Problem must carry; Message is matched as
	// a substring.
	type wantProblem struct {
		doc     int
		key     config.Key
		field   string
		message string
	}
	tests := []struct {
		name     string
		in       string
		configs  []config.Key
		problems []wantProblem
	}{
		{
			name: "valid VirtualService",
			in: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: prod
spec:
  hosts: [reviews]
`,
			configs: []config.Key{key(schema.VirtualService, "prod", "reviews")},
		},
		{
			name: "field error, namespace defaulted",
			in: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  http:
  - timeout: 5x
`,
			problems: []wantProblem{{
				doc:     1,
				key:     key(schema.VirtualService, config.DefaultNamespace, "reviews"),
				field:   "spec.http[0].timeout",
				message: `invalid duration "5x"`,
			}},
		},
		{
			name: "error in second document keeps the first",
			in: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ok
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dr
  namespace: prod
spec:
  host: [a]
`,
			configs: []config.Key{key(schema.VirtualService, "default", "ok")},
			problems: []wantProblem{{
				doc:     2,
				key:     key(schema.DestinationRule, "prod", "dr"),
				field:   "spec.host",
				message: "want a string",
			}},
		},
		{
			name: "non-Istio kinds are skipped silently",
			in: `apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  ports: [{port: 9080}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ext
spec:
  hosts: [ext.example.com]
`,
			configs: []config.Key{key(schema.ServiceEntry, "default", "ext")},
		},
		{
			name: "YAML syntax error has no key",
			in:   "a: [\n",
			problems: []wantProblem{{
				doc:     1,
				message: "invalid YAML",
			}},
		},
		{
			name: "unknown Istio kind keeps kind and name in the message",
			in: `apiVersion: networking.istio.io/v1
kind: Bogus
metadata:
  name: b
`,
			problems: []wantProblem{{
				doc:     1,
				field:   "kind",
				message: `Bogus b: kind "Bogus" is not supported`,
			}},
		},
		{
			name: "object without a name is not keyed",
			in: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  namespace: prod
`,
			problems: []wantProblem{{
				doc:     1,
				field:   "metadata.name",
				message: "VirtualService: required",
			}},
		},
	}
	decode := Decoder(schema.Istio())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const file = "conf/bookinfo.yaml"
			cs, err := decode(file, []byte(tt.in))
			var keys []config.Key
			for _, c := range cs {
				keys = append(keys, c.Key())
				if c.Source.File != file || c.Source.Document == 0 {
					t.Errorf("%v has source %+v, want file %q and a document", c.Key(), c.Source, file)
				}
			}
			if !slices.Equal(keys, tt.configs) {
				t.Errorf("decoded %v, want %v", keys, tt.configs)
			}
			ps := problems(t, err)
			if len(ps) != len(tt.problems) {
				t.Fatalf("got %d problems %v, want %d", len(ps), err, len(tt.problems))
			}
			for i, w := range tt.problems {
				p := ps[i]
				if p.Code != store.CodeDecode || p.Severity != store.SeverityError {
					t.Errorf("problem %d: code %q severity %v, want %q error", i, p.Code, p.Severity, store.CodeDecode)
				}
				if want := (config.Source{File: file, Document: w.doc}); p.Source != want {
					t.Errorf("problem %d: source %+v, want %+v", i, p.Source, want)
				}
				if p.Key != w.key {
					t.Errorf("problem %d: key %+v, want %+v", i, p.Key, w.key)
				}
				if p.Field != w.field {
					t.Errorf("problem %d: field %q, want %q", i, p.Field, w.field)
				}
				if !strings.Contains(p.Message, w.message) {
					t.Errorf("problem %d: message %q, want it to contain %q", i, p.Message, w.message)
				}
			}
		})
	}
}

// TestDecoderProblemsAreKeptByTheStore checks that the problems survive
// store.AsProblems (what the file store does with them) unchanged.
func TestDecoderProblemsAreKeptByTheStore(t *testing.T) {
	_, err := Decoder(schema.Istio())("a.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  http:
  - timeout: 5x
`))
	got := store.AsProblems(err, store.Problem{Code: store.CodeUnreadable, Source: config.Source{File: "ignored"}})
	want := []store.Problem{{
		Code:    store.CodeDecode,
		Source:  config.Source{File: "a.yaml", Document: 1},
		Key:     key(schema.VirtualService, "default", "reviews"),
		Field:   "spec.http[0].timeout",
		Message: `invalid duration "5x"`,
	}}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

func TestValidate(t *testing.T) {
	type wantProblem struct{ field, message string }
	tests := []struct {
		name     string
		in       string
		key      config.Key
		problems []wantProblem
		warnings []string // substrings, in order
	}{
		{
			name: "valid",
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se
spec:
  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
`,
			key: key(schema.ServiceEntry, "default", "se"),
		},
		{
			name: "field error",
			in: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se
  namespace: prod
spec:
  hosts: [a.example.com]
  ports: [{number: 0, name: http, protocol: HTTP}]
`,
			key:      key(schema.ServiceEntry, "prod", "se"),
			problems: []wantProblem{{"spec.ports[0].number", "must be in the range 1..65535"}},
		},
		{
			name: "warning only",
			in: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dr
spec:
  host: reviews
  workloadSelector: {}
`,
			key:      key(schema.DestinationRule, "default", "dr"),
			warnings: []string{"spec.workloadSelector: workload selector without labels"},
		},
		{
			name: "error and warning",
			in: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dr
spec:
  host: ''
  workloadSelector: {}
`,
			key:      key(schema.DestinationRule, "default", "dr"),
			problems: []wantProblem{{"spec.host", "must not be empty"}},
			warnings: []string{"spec.workloadSelector: workload selector without labels"},
		},
	}
	decode := Decoder(schema.Istio())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := decode("v.yaml", []byte(tt.in))
			if err != nil || len(cs) != 1 {
				t.Fatalf("decoding: %d objects, %v", len(cs), err)
			}
			warnings, err := Validate(cs[0])
			if len(warnings) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %d", warnings, len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d is %q, want it to contain %q", i, warnings[i], w)
				}
			}
			ps := problems(t, err)
			if len(ps) != len(tt.problems) {
				t.Fatalf("got %d problems %v, want %d", len(ps), err, len(tt.problems))
			}
			for i, w := range tt.problems {
				p := ps[i]
				if p.Code != store.CodeInvalid || p.Severity != store.SeverityError {
					t.Errorf("problem %d: code %q severity %v, want %q error", i, p.Code, p.Severity, store.CodeInvalid)
				}
				if p.Key != tt.key {
					t.Errorf("problem %d: key %+v, want %+v", i, p.Key, tt.key)
				}
				if want := (config.Source{File: "v.yaml", Document: 1}); p.Source != want {
					t.Errorf("problem %d: source %+v, want %+v", i, p.Source, want)
				}
				if p.Field != w.field || !strings.Contains(p.Message, w.message) {
					t.Errorf("problem %d: field %q message %q, want field %q message containing %q", i, p.Field, p.Message, w.field, w.message)
				}
			}
		})
	}
}

// TestValidateThroughCheck runs Validate the way every store does, through
// store.Check: errors reject with their field, warnings are admitted and
// reported.
func TestValidateThroughCheck(t *testing.T) {
	cs, err := Decoder(schema.Istio())("v.yaml", []byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dr
spec:
  host: ''
  workloadSelector: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	ps, ok := store.Check(schema.Istio(), Validate, cs[0])
	if ok {
		t.Fatal("an object with an empty host was admitted")
	}
	codes := map[store.Code]string{}
	for _, p := range ps {
		if p.Key != key(schema.DestinationRule, "default", "dr") {
			t.Errorf("problem %v has key %v", p, p.Key)
		}
		codes[p.Code] = p.Field
	}
	if codes[store.CodeInvalid] != "spec.host" {
		t.Errorf("no InvalidObject problem on spec.host in %v", ps)
	}
	if _, ok := codes[store.CodeWarning]; !ok {
		t.Errorf("the warning was not passed through: %v", ps)
	}
}
