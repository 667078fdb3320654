package analysis

import (
	"context"
	"errors"
	"flag"
	"github.com/trellismesh/trellis/internal/config/ingest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/testing/samples"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testValidate is ingest.Validate plus test hooks: it rejects objects
// annotated test.trellis.dev/reject and warns about test.trellis.dev/warn.
func testValidate(c config.Config) ([]string, error) {
	warnings, err := ingest.Validate(c)
	if w, ok := c.Annotations["test.trellis.dev/warn"]; ok {
		warnings = append(warnings, w)
	}
	if r, ok := c.Annotations["test.trellis.dev/reject"]; ok {
		field, msg, _ := strings.Cut(r, ": ")
		return warnings, errors.Join(err, store.Problem{Field: field, Message: msg})
	}
	return warnings, err
}

// render prints messages one per line with paths made relative to the
// directories they were read from.
func render(ms []Message, roots map[string]string) string {
	var b strings.Builder
	for _, m := range ms {
		for dir, name := range roots {
			if rel, err := filepath.Rel(dir, m.Origin.File); err == nil && !strings.HasPrefix(rel, "..") {
				m.Origin.File = filepath.ToSlash(filepath.Join(name, rel))
			}
			prefix := name
			if prefix != "" {
				prefix += "/"
			}
			m.Text = strings.ReplaceAll(m.Text, dir+string(filepath.Separator), prefix)
		}
		b.WriteString(m.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got); run with -update if intended:\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		t.Run(name, func(t *testing.T) {
			caseDir := filepath.Join("testdata", name)
			dirs := []string{caseDir}
			roots := map[string]string{caseDir: ""}
			if name == "bookinfo" {
				b := samples.Path(t, "bookinfo")
				dirs = append(dirs, b)
				roots[b] = "$BOOKINFO"
			}
			in, err := Load(context.Background(), LoadConfig{Dirs: dirs, Validate: testValidate})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(caseDir, "expected.golden"), render(Analyze(in), roots))
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(context.Background(), LoadConfig{}); err == nil {
		t.Error("Load without directories succeeded")
	}
	if _, err := Load(context.Background(), LoadConfig{Dirs: []string{"testdata/nope"}, Validate: testValidate}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing directory: %v", err)
	}
	if _, err := Load(context.Background(), LoadConfig{Dirs: []string{"analysis_test.go"}, Validate: testValidate}); err == nil {
		t.Error("Load of a file succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Load(ctx, LoadConfig{Dirs: []string{"testdata/clean"}, Validate: testValidate}); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v", err)
	}
}
