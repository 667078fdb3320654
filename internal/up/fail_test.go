package up

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runToError runs cfg and expects Run to fail before anything starts.
func runToError(t *testing.T, cfg Config) (error, *Up) {
	t.Helper()
	out := &syncBuffer{}
	cfg.Out = out
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = u.Run(ctx)
	if err == nil {
		t.Fatalf("Run succeeded, want an error; output:\n%s", out)
	}
	select {
	case <-u.Ready():
		t.Error("Ready closed although Run failed")
	default:
	}
	t.Logf("error:\n%v", err)
	return err, u
}

// nothingStarted fails if u started a process or created its state
// directory.
func nothingStarted(t *testing.T, u *Up, cfg Config) {
	t.Helper()
	if pids := u.PIDs(); len(pids) != 0 {
		t.Errorf("started processes %v before failing", pids)
	}
	if _, err := os.Stat(cfg.StateDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory %s exists (err %v): something started", cfg.StateDir, err)
	}
}

func TestInvalidConfig(t *testing.T) {
	cases := []struct {
		name, file, content string
		want                []string
	}{
		{
			name: "field",
			file: "bad-vs.yaml",
			content: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
      weight: -5
`,
			want: []string{"bad-vs.yaml", "VirtualService", "broken", "spec.http[0].route[0].weight", "nothing was started"},
		},
		{
			name:    "yaml syntax",
			file:    "syntax.yaml",
			content: "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: x\n",
			want:    []string{"syntax.yaml", "nothing was started"},
		},
		{
			name: "run annotation",
			file: "bad-run.yaml",
			content: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: extra
  namespace: default
  annotations:
    trellis.dev/run: "trellis bookinfo ratings --listen {{.Adress}}:9080"
spec:
  address: 127.0.0.99
`,
			want: []string{"bad-run.yaml", "WorkloadEntry", "extra", "metadata.annotations[trellis.dev/run]", "Adress"},
		},
		{
			name: "not loopback",
			file: "remote.yaml",
			content: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: remote
  namespace: default
spec:
  address: 10.1.2.3
`,
			want: []string{"remote.yaml", "WorkloadEntry", "remote", "spec.address", "loopback"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := bookinfoDir(t)
			if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := testConfig(t, dir, nil)
			err, u := runToError(t, cfg)
			var ice *InvalidConfigError
			if !errors.As(err, &ice) {
				t.Errorf("error is %T, want *InvalidConfigError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q", w)
				}
			}
			nothingStarted(t, u, cfg)
		})
	}
}

func TestPortInUse(t *testing.T) {
	dir, prefix := bookinfoDir(t)
	busy := func(t *testing.T, addr string) string {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().String()
	}
	cases := []struct {
		name string
		set  func(t *testing.T, cfg *Config) string // returns the busy address
		want []string
	}{
		{"xds", func(t *testing.T, cfg *Config) string {
			cfg.XDSAddress = busy(t, "127.0.0.1:0")
			return cfg.XDSAddress
		}, []string{"xDS", "--xds-address"}},
		{"ingress", func(t *testing.T, cfg *Config) string {
			cfg.IngressAddress = busy(t, "127.0.0.1:0")
			return cfg.IngressAddress
		}, []string{"front door", "--ingress"}},
		{"workload port", func(t *testing.T, cfg *Config) string {
			// The WorkloadEntry's port is its sidecar's inbound listener.
			return busy(t, prefix+"13:9080")
		}, []string{"inbound listener of the sidecar of reviews-v2.default", "spec.address", "services.yaml"}},
		{"sidecar", func(t *testing.T, cfg *Config) string {
			return busy(t, prefix+"12:15001")
		}, []string{"sidecar of reviews-v1.default"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, dir, nil)
			addr := tc.set(t, &cfg)
			err, u := runToError(t, cfg)
			var pe *PortInUseError
			if !errors.As(err, &pe) {
				t.Errorf("error is %T, want *PortInUseError", err)
			}
			for _, w := range append(tc.want, "port in use", addr) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q", w)
				}
			}
			nothingStarted(t, u, cfg)
		})
	}
}

// TestStartFailure: a workload that exits at once stops everything
// started before it, and the error names it, its log and its last words.
func TestStartFailure(t *testing.T) {
	dir, _ := bookinfoDir(t)
	p := filepath.Join(dir, "services.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "trellis bookinfo ratings --listen", "trellis bookinfo nosuchrole --listen", 1)
	if s == string(b) {
		t.Fatal("ratings' run annotation not found in services.yaml")
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, dir, nil)
	err, u := runToError(t, cfg)
	var se *StartError
	if !errors.As(err, &se) {
		t.Fatalf("error is %T, want *StartError", err)
	}
	if se.Component != "workload ratings-v1.default" {
		t.Errorf("component %q, want workload ratings-v1.default", se.Component)
	}
	for _, w := range []string{"exited before it was ready", "nosuchrole", se.Log, "trellis.dev/run", "services.yaml"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q", w)
		}
	}
	pids := u.PIDs()
	// details, productpage: sidecar and workload each; ratings: both.
	if len(pids) != 6 {
		t.Errorf("started %d processes before failing, want 6", len(pids))
	}
	gone(t, pids)
}
