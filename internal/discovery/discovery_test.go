package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/trellismesh/trellis/internal/config"
	"github.com/trellismesh/trellis/internal/config/schema"
	"github.com/trellismesh/trellis/internal/config/store"
	"github.com/trellismesh/trellis/internal/freeport"
	"github.com/trellismesh/trellis/internal/model"
	"github.com/trellismesh/trellis/internal/testing/runready"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor bounds every wait on the control plane.
const waitFor = 10 * time.Second

const reviewsHost = "reviews.default.svc.cluster.local"

// reviewsEntry is a ServiceEntry for reviews with the given ports (number
// 0 is invalid) selecting app=reviews workloads.
func reviewsEntry(ports ...int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
  - reviews.default.svc.cluster.local
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector:
    labels:
      app: reviews
  ports:
`)
	for _, p := range ports {
		fmt.Fprintf(&b, "  - number: %d\n    name: http-%d\n    protocol: HTTP\n", p, p)
	}
	return b.String()
}

const reviewsWorkload = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
  namespace: default
spec:
  address: 10.0.0.5
  labels:
    app: reviews
    version: v1
`

const reviewsRule = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: default
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
`

// writeFile writes a config file through a rename, as editors do.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// testConfig is a control plane on dir with loopback listeners on free
// ports and short debounces.
func testConfig(t *testing.T, dir string) Config {
	return Config{
		ConfigDir:         dir,
		XDSAddress:        "127.0.0.1:0",
		MonitoringAddress: "127.0.0.1:0",
		Debounce:          10 * time.Millisecond,
		FileDebounce:      20 * time.Millisecond,
		Logger:            slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// start writes files into a new directory, then runs a control plane on it
// and waits until it is ready. The control plane stops when the test ends,
// and Run must then return nil.
func start(t *testing.T, files map[string]string) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	s, err := New(testConfig(t, dir))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	runready.Start(t, s, waitFor, "")
	return s, dir
}

// eventually polls cond until it returns nil, failing after waitFor.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, waitFor, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// get fetches path from the monitoring endpoint without keeping the
// connection (so no client goroutine outlives the test).
func get(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: waitFor}
	resp, err := c.Get("http://" + s.MonitoringAddr().String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// reviews returns the reviews service of snap and its endpoints' addresses.
func reviews(snap *model.Snapshot) (*model.Service, []string, error) {
	if snap == nil {
		return nil, nil, errors.New("no snapshot")
	}
	svcs := snap.ServicesByHost(reviewsHost)
	if len(svcs) != 1 {
		return nil, nil, fmt.Errorf("snapshot %s has %d services for %s", snap.Version, len(svcs), reviewsHost)
	}
	var addrs []string
	for _, ep := range snap.Endpoints(svcs[0].Key()) {
		addrs = append(addrs, ep.Address)
	}
	return svcs[0], addrs, nil
}

func portNumbers(svc *model.Service) []uint32 {
	var out []uint32
	for _, p := range svc.Ports {
		out = append(out, p.Number)
	}
	return out
}

func TestNewNeedsASource(t *testing.T) {
	_, err := New(Config{})
	if err == nil || !strings.Contains(err.Error(), "no configuration source") {
		t.Fatalf("New with no directory and no stores: %v, want a no configuration source error", err)
	}
}

// freePort returns a loopback address that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	p, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p)))
}

func TestRunFailsWhenAddressTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()

	tests := []struct {
		name       string
		xds, mon   string
		wantPrefix string
	}{
		{"xds", addr, "-", "xds listener on " + addr},
		{"monitoring", freePort(t), addr, "monitoring listener on " + addr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			cfg.XDSAddress, cfg.MonitoringAddress = tt.xds, tt.mon
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- s.Run(context.Background()) }()
			select {
			case err = <-done:
			case <-time.After(waitFor):
				t.Fatal("Run kept running with its address taken")
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantPrefix) || !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("Run: %v, want an address-in-use error starting %q", err, tt.wantPrefix)
			}
			select {
			case <-s.Ready():
				t.Fatal("ready although Run failed")
			default:
			}
			if tt.xds == addr {
				return
			}
			// The xDS listener, opened before the monitoring one failed,
			// was closed again.
			l, err := net.Listen("tcp", tt.xds)
			if err != nil {
				t.Fatalf("xds address %s still in use after Run failed: %v", tt.xds, err)
			}
			l.Close()
		})
	}
}

// TestReadyAfterInitialConfig checks that readiness waits for the
// directory's first load: what was on disk before Run is in the first
// snapshot, registry results included.
func TestReadyAfterInitialConfig(t *testing.T) {
	s, _ := start(t, map[string]string{
		"reviews.yaml": reviewsEntry(9080) + "---\n" + reviewsWorkload,
		"rule.yaml":    reviewsRule,
		"ignored.txt":  "not: yaml config",
		"k8s-svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n",
	})
	snap := s.Snapshot()
	svc, addrs, err := reviews(snap)
	if err != nil {
		t.Fatalf("first snapshot after Ready: %v", err)
	}
	if got := portNumbers(svc); len(got) != 1 || got[0] != 9080 {
		t.Errorf("reviews ports %v, want [9080]", got)
	}
	if len(addrs) != 1 || addrs[0] != "10.0.0.5" {
		t.Errorf("reviews endpoints %v, want [10.0.0.5] from the WorkloadEntry", addrs)
	}
	if _, ok := snap.Config(config.Key{Kind: schema.DestinationRule, Namespace: "default", Name: "reviews"}); !ok {
		t.Error("the DestinationRule is not in the first snapshot")
	}
	if ps := s.Problems(); len(ps) != 0 {
		t.Errorf("problems with a clean directory: %v", ps)
	}
	if code, body := get(t, s, "/ready"); code != http.StatusOK {
		t.Errorf("GET /ready after Ready: %d %q", code, body)
	}
}

func TestFileChanges(t *testing.T) {
	s, dir := start(t, map[string]string{"reviews.yaml": reviewsEntry(9080)})
	path := filepath.Join(dir, "reviews.yaml")
	v0 := s.Snapshot().Version

	// A change reaches a new snapshot.
	writeFile(t, path, reviewsEntry(9080, 9081))
	var v1 string
	eventually(t, "new port in a new snapshot", func() error {
		snap := s.Snapshot()
		svc, _, err := reviews(snap)
		if err != nil {
			return err
		}
		if got := portNumbers(svc); len(got) != 2 || got[1] != 9081 {
			return fmt.Errorf("snapshot %s has ports %v", snap.Version, got)
		}
		if snap.Version == v0 {
			return fmt.Errorf("content changed but version %s did not", v0)
		}
		v1 = snap.Version
		return nil
	})

	// An invalid version is reported with file, kind, name and field, and
	// the last valid one stays. A decode error elsewhere is reported the
	// same way, and a valid file written alongside still gets in.
	writeFile(t, path, reviewsEntry(9080, 0))
	vsPath := filepath.Join(dir, "vs.yaml")
	writeFile(t, vsPath, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - timeout: 5x
`)
	writeFile(t, filepath.Join(dir, "rule.yaml"), reviewsRule)
	want := []store.Problem{
		{
			Code:   store.CodeInvalid,
			Source: config.Source{File: path, Document: 1},
			Key:    config.Key{Kind: schema.ServiceEntry, Namespace: "default", Name: "reviews"},
			Field:  "spec.ports[1].number",
		},
		{
			Code:   store.CodeDecode,
			Source: config.Source{File: vsPath, Document: 1},
			Key:    config.Key{Kind: schema.VirtualService, Namespace: "default", Name: "reviews"},
			Field:  "spec.http[0].timeout",
		},
	}
	eventually(t, "problems reported", func() error {
		got := s.Problems()
		for _, w := range want {
			found := false
			for _, p := range got {
				p.Message = ""
				if p == w {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("no problem %+v in %v", w, got)
			}
		}
		return nil
	})
	for _, p := range s.Problems() {
		if p.Message == "" || !strings.Contains(p.Error(), p.Source.File) {
			t.Errorf("problem %+v: Error() %q does not name the file or has no message", p, p.Error())
		}
	}
	eventually(t, "valid file next to invalid ones in the snapshot", func() error {
		if _, ok := s.Snapshot().Config(config.Key{Kind: schema.DestinationRule, Namespace: "default", Name: "reviews"}); !ok {
			return errors.New("no DestinationRule")
		}
		return nil
	})
	snap := s.Snapshot()
	if snap.Version == v1 {
		t.Fatalf("version %s did not change although the DestinationRule was added", v1)
	}
	svc, _, err := reviews(snap)
	if err != nil {
		t.Fatal(err)
	}
	if got := portNumbers(svc); len(got) != 2 || got[1] != 9081 {
		t.Errorf("after an invalid edit reviews has ports %v, want the last valid [9080 9081]", got)
	}

	// Fixing the file clears its problem.
	writeFile(t, path, reviewsEntry(9080))
	eventually(t, "problem cleared after the fix", func() error {
		for _, p := range s.Problems() {
			if p.Source.File == path {
				return fmt.Errorf("still reported: %v", p)
			}
		}
		svc, _, err := reviews(s.Snapshot())
		if err != nil {
			return err
		}
		if got := portNumbers(svc); len(got) != 1 {
			return fmt.Errorf("ports %v", got)
		}
		return nil
	})
}
