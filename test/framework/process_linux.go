package framework

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a long-running child process (a proxy, a helper) whose output
// is kept for the test log.
type Process struct {
	Name string
	Cmd  *exec.Cmd

	out  *lockedBuffer
	done chan struct{}
	err  error // valid once done is closed
}

// lockedBuffer is an io.Writer safe for the two output pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartProcess starts cmd (not yet started; its Stdout and Stderr are
// replaced) in its own process group. When the test ends the group gets
// SIGTERM, then SIGKILL after 5s, and the output is written to the test
// log if the test failed or logAlways is set.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd, logAlways bool) *Process {
	t.Helper()
	p := &Process{Name: name, Cmd: cmd, out: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// Pdeathsig fires when the thread that forked the child exits, not the
	// process; Go destroys threads that end locked (framework.Netns.Do
	// does that on purpose). So fork from a thread of our own, locked for
	// as long as the child lives.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("starting %s (%s): %v", name, strings.Join(cmd.Args, " "), err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() || logAlways {
			t.Logf("---- %s (%s) exited: %v; output:\n%s---- end of %s", name, strings.Join(cmd.Args, " "), p.err, p.Output(), name)
		}
	})
	return p
}

// Stop terminates the process group (SIGTERM, then SIGKILL after 5s) and
// waits for the process.
func (p *Process) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// Exited returns the process's exit error and true once it has exited.
func (p *Process) Exited() (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	default:
		return nil, false
	}
}

// Output returns what the process has written so far.
func (p *Process) Output() string { return p.out.String() }

// Tail returns the last n lines of the output.
func (p *Process) Tail(n int) string {
	lines := strings.SplitAfter(p.Output(), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines omitted)\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}
