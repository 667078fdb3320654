package analyze

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/analysis"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// execute runs the command and returns its output followed by the error.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantExit int // 0: no error
	}{
		{"text", []string{"testdata/broken"}, 1},
		{"json", []string{"-o", "json", "testdata/broken"}, 1},
		{"yaml", []string{"-o", "yaml", "testdata/broken"}, 1},
		{"errors-only", []string{"--output-threshold", "Error", "testdata/broken"}, 1},
		{"fail-on-warning", []string{"--failure-threshold", "Warning", "--output-threshold", "Warning", "testdata/broken"}, 1},
		{"never-fail-on-info", []string{"--failure-threshold", "error", "testdata/clean"}, 0},
		{"two-dirs", []string{"testdata/clean", "testdata/broken"}, 1},
		{"json-clean", []string{"-o", "json", "testdata/clean"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := execute(t, tc.args...)
			got := out
			exit := 0
			if err != nil {
				var fe *FindingsError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is not a *FindingsError", err)
				}
				exit = fe.ExitCode()
				got += "error: " + err.Error() + "\n"
			}
			if exit != tc.wantExit {
				t.Errorf("exit code %d, want %d", exit, tc.wantExit)
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
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got); run with -update if intended:\n%s", path, diff)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-o", "xml", "testdata/clean"},
		{"--output-threshold", "loud", "testdata/clean"},
		{"--failure-threshold", "never", "testdata/clean"},
		{"testdata/does-not-exist"},
	} {
		_, err := execute(t, args...)
		var fe *FindingsError
		if err == nil || errors.As(err, &fe) {
			t.Errorf("%v: error %v, want a usage error", args, err)
		}
	}
}

func TestDocumentationURL(t *testing.T) {
	if got := DocumentationURL("IST0101"); got != "https://istio.io/latest/docs/reference/config/analysis/ist0101/" {
		t.Errorf("IST0101: %q", got)
	}
	if got := DocumentationURL("TRL0001"); got != "" {
		t.Errorf("TRL0001: %q", got)
	}
}

func TestFindingsErrorText(t *testing.T) {
	e := &FindingsError{Counts: map[analysis.Level]int{analysis.Error: 2, analysis.Warning: 1, analysis.Info: 3}, Threshold: analysis.Warning}
	if got, want := e.Error(), "analysis found 2 errors and 1 warning"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !strings.Contains((&FindingsError{Counts: map[analysis.Level]int{analysis.Error: 1}}).Error(), "1 error") {
		t.Error("singular")
	}
}
