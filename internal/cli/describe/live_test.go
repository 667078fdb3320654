package describe

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellismesh/trellis/internal/testing/trellisbin"
	"github.com/trellismesh/trellis/internal/up"
)

func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := trellisbin.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// describeCmd runs `trellis describe ARGS` through the cobra command.
func describeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// TestLiveMesh runs `trellis up` (in process, with a freshly built
// binary for the sidecars and workloads) on the Bookinfo example moved to
// a random loopback range, then `trellis describe` against it through its
// run file, as a user would after `trellis up`.
func TestLiveMesh(t *testing.T) {
	root := moduleRoot(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "trellis")
	if err := trellisbin.Build(bin); err != nil {
		t.Fatalf("needs the Go toolchain: %v", err)
	}
	dir := filepath.Join(tmp, "config")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("127.%d.%d.", 1+rand.IntN(250), 1+rand.IntN(250))
	files, err := filepath.Glob(filepath.Join(root, "examples", "bookinfo", "config", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML in examples/bookinfo/config: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "address: 127.0.0.", "address: "+prefix)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runFile := filepath.Join(tmp, ".trellis", "up.json")
	var log bytes.Buffer
	u, err := up.New(up.Config{
		Dir: dir, Executable: bin,
		XDSAddress: "127.0.0.1:0", MonitoringAddress: "127.0.0.1:0", CAAddress: "127.0.0.1:0", IngressAddress: "127.0.0.1:0",
		StateDir: filepath.Join(tmp, "state"), DrainDuration: 200 * time.Millisecond, ReadyTimeout: 30 * time.Second,
		RunFile: runFile, Out: &lockedWriter{w: &log},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("trellis up did not stop 30s after cancel")
		}
	})
	select {
	case <-u.Ready():
	case err := <-done:
		t.Fatalf("trellis up returned before ready: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("trellis up not ready after 90s")
	}

	t.Run("service", func(t *testing.T) {
		out, err := describeCmd(t, "service", "reviews", "--run-file", runFile)
		if err != nil {
			t.Fatalf("describe service reviews: %v\n%s", err, out)
		}
		for _, want := range []string{
			"Service:     reviews.default.svc.cluster.local",
			"default/reviews (" + filepath.Join(dir, "virtual-service-reviews.yaml") + ":1): APPLIES",
			`http[0]: header end-user exact "jason"`,
			"→ reviews subset v2  100%",
			"default/reviews (" + filepath.Join(dir, "destination-rules.yaml") + ":1), host reviews",
			"subset v3 (version=v3): reviews-v3",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("workload", func(t *testing.T) {
		var out string
		deadline := time.Now().Add(20 * time.Second)
		for {
			var err error
			out, err = describeCmd(t, "workload", "reviews-v2", "--run-file", runFile)
			if err != nil {
				t.Fatalf("describe workload reviews-v2: %v\n%s", err, out)
			}
			if strings.Contains(out, "SYNCED") || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, want := range []string{
			"Workload:        reviews-v2",
			"Address:         " + prefix + "13",
			"reviews.default.svc.cluster.local (namespace default): http 9080→9080/HTTP",
			"VirtualService default/reviews: reviews",
			"Proxy reviews-v2.default:",
			"SYNCED",
			"Listeners (from the control plane):",
			"Routes (from the control plane):",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		out, err := describeCmd(t, "workload", "reviews-v1", "-o", "json", "--run-file", runFile)
		if err != nil {
			t.Fatalf("describe workload -o json: %v\n%s", err, out)
		}
		if !strings.Contains(out, `"id": "reviews-v1.default"`) || !strings.Contains(out, `"serviceAccount": "bookinfo-reviews"`) {
			t.Errorf("JSON lacks the proxy or the service account:\n%s", out)
		}
	})
	if t.Failed() {
		t.Logf("trellis up output:\n%s", log.String())
	}
}
