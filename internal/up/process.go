package up

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one child: a sidecar or a workload. Its stdout and stderr go
// to a log file. The child runs in its own process group (so the
// terminal's Ctrl-C reaches only up, which stops children in order) and,
// on Linux, is killed if up dies (Pdeathsig).
type process struct {
	name string // "sidecar reviews-v2.default", "workload reviews-v2.default"
	log  string // path of the log file
	cmd  *exec.Cmd
	// done is closed when the process has exited; err is then its Wait
	// result.
	done chan struct{}
	err  error

	stopOnce sync.Once
	stopErr  error
}

// startProcess starts argv with its output in logPath; a non-zero gid
// runs it with that group (the sidecar's 1337 with --netns, which the
// capture rules exempt).
func startProcess(name, logPath string, argv []string, gid uint32) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	if gid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(os.Geteuid()), Gid: gid, Groups: []uint32{}}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: starting %s: %w", name, argv[0], err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// pid returns the child's process ID.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group and waits for the child
// to exit; after grace it sends SIGKILL to the group. It returns the
// child's exit error unless the child exited 0 or because of the signal.
// Only the first call signals (the group's ID may be reused afterwards).
func (p *process) stop(grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.terminate(grace) })
	return p.stopErr
}

func (p *process) terminate(grace time.Duration) error {
	pgid := p.pid() // the child leads its own group
	if !p.exited() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Whatever the child left in its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil
		}
	}
	return p.err
}

// tail returns the last n lines of the log file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return "(empty)"
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logPath is the log file of a component in the state directory.
func logPath(stateDir, component string) string {
	return filepath.Join(stateDir, strings.ReplaceAll(component, " ", "-")+".log")
}
