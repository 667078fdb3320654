package decode

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

// addSamples seeds a fuzz corpus with the Istio sample files.
func addSamples(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(samples.Path(f, "bookinfo"), "*", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no sample files: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		"",
		"---\n---\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.istio.io/v1\n  kind: Gateway\n  metadata: {name: a}\n",
		"apiVersion: networking.istio.io/v1\nkind: VirtualServiceList\nitems: [{metadata: {name: a}}]\n",
		"a: &a [1, 2]\nb: [*a, *a]\n",
		"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec: {portLevelMtls: {80: {mode: STRICT}}}\n",
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {http: [{timeout: 1m, directResponse: {status: 200, body: {bytes: AAA=}}}]}\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzDecode checks that arbitrary input never panics and that whatever
// decodes is well formed.
func FuzzDecode(f *testing.F) {
	addSamples(f)
	schemas := schema.Istio()
	f.Fuzz(func(t *testing.T, data []byte) {
		res := Decode(schemas, "fuzz.yaml", data)
		if len(res.Configs)+len(res.Skipped) > MaxObjects {
			t.Fatalf("%d objects", len(res.Configs)+len(res.Skipped))
		}
		for _, c := range res.Configs {
			if c.Spec == nil || c.Name == "" || c.Namespace == "" || c.Source.Document < 1 {
				t.Fatalf("malformed config %+v", c)
			}
			if _, ok := schemas.Find(c.Kind.Group, c.Version, c.Kind.Kind); !ok {
				t.Fatalf("config of unserved kind %v %s", c.Kind, c.Version)
			}
			if _, err := protojson.Marshal(c.Spec); err != nil {
				t.Fatalf("decoded spec does not marshal: %v", err)
			}
		}
		for _, e := range res.Errors {
			if e.Reason == "" || e.Error() == "" {
				t.Fatalf("empty error %+v", e)
			}
		}
	})
}
