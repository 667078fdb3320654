package up

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultRunFile is where `trellis up` records the running mesh, relative
// to the directory it runs in (next to the default CA directory,
// .trellis/ca): `trellis apply`, `delete` and `describe` read it to find
// the watched directory and the control plane.
const DefaultRunFile = ".trellis/up.json"

// RunInfo is the content of the run file: what a running `trellis up`
// serves and watches.
type RunInfo struct {
	PID        int    `json:"pid"`
	Dir        string `json:"dir"`
	StateDir   string `json:"stateDir"`
	XDS        string `json:"xds"`
	Monitoring string `json:"monitoring,omitempty"`
	CA         string `json:"ca,omitempty"`
	CADir      string `json:"caDir,omitempty"`
	Ingress    string `json:"ingress,omitempty"`
}

// ErrNotRunning means no `trellis up` is recorded in the run file, or the
// recorded process has gone.
var ErrNotRunning = errors.New("no trellis up is running")

// ReadRunFile returns the mesh recorded in path. A missing file, or one
// whose process no longer exists, is ErrNotRunning (wrapped with path).
func ReadRunFile(path string) (RunInfo, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return RunInfo{}, fmt.Errorf("%w (no %s)", ErrNotRunning, path)
	}
	if err != nil {
		return RunInfo{}, fmt.Errorf("reading %s: %w", path, err)
	}
	var ri RunInfo
	if err := json.Unmarshal(b, &ri); err != nil {
		return RunInfo{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if ri.Dir == "" || ri.PID <= 0 {
		return RunInfo{}, fmt.Errorf("reading %s: no dir or pid", path)
	}
	if err := syscall.Kill(ri.PID, 0); errors.Is(err, syscall.ESRCH) {
		return RunInfo{}, fmt.Errorf("%w (%s names process %d, which has exited)", ErrNotRunning, path, ri.PID)
	}
	return ri, nil
}

// writeRunFile records ri in path atomically.
func writeRunFile(path string, ri RunInfo) error {
	b, err := json.MarshalIndent(ri, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("run file %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("run file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("run file %s: %w", path, err)
	}
	return nil
}

// removeRunFile removes path if it still records this process.
func removeRunFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var ri RunInfo
	if json.Unmarshal(b, &ri) == nil && ri.PID == os.Getpid() {
		os.Remove(path)
	}
}
