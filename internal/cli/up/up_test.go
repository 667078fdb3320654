package up

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, d Deps, args ...string) error {
	t.Helper()
	cmd := NewCommand(d)
	cmd.SetArgs(args)
	var out strings.Builder
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	return cmd.ExecuteContext(context.Background())
}

func TestCommandErrors(t *testing.T) {
	exe := func() (string, error) { return "/nonexistent/trellis", nil }
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "x.yaml"), []byte("kind: VirtualService\napiVersion: networking.istio.io/v1\nmetadata: {name: v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		euid int
		args []string
		want string
	}{
		{"netns not root", 1000, []string{"--netns", bad}, "--netns needs root (network namespaces and iptables)"},
		{"netns bad subnet", 0, []string{"--netns", "--netns-subnet", "10.77.0/24", bad}, "--netns-subnet"},
		{"netns root, invalid yaml", 0, []string{"--netns", "--xds-address", "127.0.0.1:0", "--monitoring-address", "-", "--ingress", "-", bad}, "x.yaml"},
		{"missing dir", 1000, []string{filepath.Join(bad, "nope")}, "nope"},
		{"invalid yaml", 1000, []string{"--xds-address", "127.0.0.1:0", "--monitoring-address", "-", "--ingress", "-", bad}, "x.yaml"},
		{"two dirs", 1000, []string{"a", "b"}, "accepts at most 1 arg"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t, Deps{Executable: exe, Geteuid: func() int { return tc.euid }}, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestDefaultDirOutsideRepo: without DIR, outside the repository, the
// command says where to run it.
func TestDefaultDirOutsideRepo(t *testing.T) {
	t.Chdir(t.TempDir())
	err := run(t, Deps{Executable: os.Executable, Geteuid: os.Geteuid})
	if err == nil || !strings.Contains(err.Error(), "run trellis up from the repository root") {
		t.Errorf("error %v, want the repository-root hint", err)
	}
}
