package describe

import (
	"bytes"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestDirFlag(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "examples", "bookinfo", "config")
	out, err := describeCmd(t, "service", "reviews:9080", "--dir", dir, "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var r struct {
		Host            string
		Port            uint32
		DestinationRule struct{ Name string }
		VirtualServices []struct {
			Name    string
			Applies bool
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if r.Host != "reviews.default.svc.cluster.local" || r.Port != 9080 || r.DestinationRule.Name != "reviews" ||
		len(r.VirtualServices) != 1 || !r.VirtualServices[0].Applies {
		t.Errorf("unexpected report: %+v", r)
	}
	// Without a control plane the workload is still described.
	out, err = describeCmd(t, "workload", "details-v1", "--dir", dir)
	if err != nil || !strings.Contains(out, "Proxy:\n  not read: no control plane address") {
		t.Errorf("describe workload --dir: %v\n%s", err, out)
	}
}

func TestErrors(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "examples", "bookinfo", "config")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"service", "reviews", "--run-file", filepath.Join(t.TempDir(), "up.json")}, "no trellis up is running"},
		{[]string{"service", "reviewz", "--dir", dir}, `service "reviewz" (namespace default) not found (known: `},
		{[]string{"workload", "nope", "--dir", dir}, "workload default/nope (a WorkloadEntry) not found"},
		{[]string{"service", "reviews", "--dir", dir, "-o", "yaml"}, `unknown format "yaml"`},
		{[]string{"service", "reviews", "--dir", dir, "--from", "default/nope"}, "--from: workload default/nope"},
		{[]string{"workload", "details-v1", "--dir", dir, "--xds-debug-address", "127.0.0.1:1"}, "reading the sync status"},
	} {
		var buf bytes.Buffer
		out, err := describeCmd(t, tc.args...)
		buf.WriteString(out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q\n%s", tc.args, err, tc.want, buf.String())
		}
	}
}
