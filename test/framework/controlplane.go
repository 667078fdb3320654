package framework

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	meshconfig "istio.io/api/mesh/v1alpha1"

	"github.com/trellismesh/trellis/internal/discovery"
)

// ControlPlane is a control plane running in the test process.
type ControlPlane struct {
	*discovery.Server
	Dir string
	// CADir is the CA directory when the secure port is served.
	CADir string
	stop  func()
}

// StartControlPlane runs the control plane on dir (created if empty) with
// loopback listeners on free ports, and waits until it is ready. It stops
// when the test ends.
func StartControlPlane(t testing.TB, dir string) *ControlPlane {
	t.Helper()
	return StartControlPlaneAt(t, dir, "127.0.0.1:0")
}

// Stop stops the control plane now (it is otherwise stopped when the test
// ends).
func (cp *ControlPlane) Stop() { cp.stop() }

// StartControlPlaneAt is StartControlPlane with a chosen xDS address.
func StartControlPlaneAt(t testing.TB, dir, xdsAddr string) *ControlPlane {
	t.Helper()
	return StartControlPlaneWith(t, ControlPlaneOptions{Dir: dir, XDSAddress: xdsAddr})
}

// ControlPlaneOptions are the choices of StartControlPlaneWith.
type ControlPlaneOptions struct {
	// Dir is the config directory ("": a temporary one).
	Dir string
	// XDSAddress is the plaintext xDS address ("": 127.0.0.1:0).
	XDSAddress string
	// SecureAddress, when set, serves the CA and xDS over mutual TLS
	// there, with the CA in CADir ("": a temporary directory).
	SecureAddress string
	CADir         string
	// Mesh is the mesh configuration (nil: the defaults).
	Mesh *meshconfig.MeshConfig
	// JWKSRefresh is the jwksUri refresh interval (0: the default, 20m).
	JWKSRefresh time.Duration
}

// StartControlPlaneWith is StartControlPlane with options.
func StartControlPlaneWith(t testing.TB, o ControlPlaneOptions) *ControlPlane {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	if o.XDSAddress == "" {
		o.XDSAddress = "127.0.0.1:0"
	}
	if o.SecureAddress != "" && o.CADir == "" {
		o.CADir = filepath.Join(t.TempDir(), "ca")
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := discovery.New(discovery.Config{
		ConfigDir:         dir,
		XDSAddress:        o.XDSAddress,
		SecureGRPCAddress: o.SecureAddress,
		CADir:             o.CADir,
		Mesh:              o.Mesh,
		MonitoringAddress: "127.0.0.1:0",
		Debounce:          10 * time.Millisecond,
		FileDebounce:      20 * time.Millisecond,
		JWKSRefresh:       o.JWKSRefresh,
		Logger:            logger,
	})
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("control plane stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("control plane exited before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("control plane not ready after 20s")
	}
	return &ControlPlane{Server: srv, Dir: dir, CADir: o.CADir, stop: stop}
}

// WriteFile writes a config file into the control plane's directory
// atomically (write to a temp file, then rename), as editors do.
func (cp *ControlPlane) WriteFile(t testing.TB, name, content string) {
	t.Helper()
	WriteFileAtomic(t, filepath.Join(cp.Dir, name), content)
}

// WriteFileAtomic writes content to path through a rename.
func WriteFileAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Eventually polls cond until it returns nil or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
