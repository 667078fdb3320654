package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process in its own process group. Every proc is also
// recorded in live so that killAll can end whatever is left on exit.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string // from the child's "LISTENING host:port" line, if it prints one
	done chan struct{}
	err  error // exit status, valid after done is closed
	once sync.Once
}

var live sync.Map // *proc → struct{}

// startProc starts path with args in its own process group, with env added to
// the harness's environment and output going to <dir>/<name>.log. If
// wantAddr is set, it waits (up to 10 s) for the child's first stdout line,
// "LISTENING host:port".
func startProc(ctx context.Context, e *Env, name, path string, args, env []string, wantAddr bool) (*proc, error) {
	return startProcCred(ctx, e, name, path, args, env, wantAddr, nil)
}

// startProcCred is startProc with the child's credentials set to cred (if
// not nil).
func startProcCred(ctx context.Context, e *Env, name, path string, args, env []string, wantAddr bool, cred *syscall.Credential) (*proc, error) {
	logf, err := os.Create(filepath.Join(e.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	// Setpgid: the group is killed as a whole (nginx master + worker).
	// Pdeathsig: the leader dies with the harness even on SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	var stdout io.ReadCloser
	if wantAddr {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, err
		}
	} else {
		cmd.Stdout = logf
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	live.Store(p, struct{}{})
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	if !wantAddr {
		return p, nil
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- strings.TrimSpace(line)
		io.Copy(logf, r) // the rest, until the child exits
	}()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "LISTENING ")
		if !ok {
			p.stop()
			return nil, fmt.Errorf("%s: expected LISTENING line, got %q (see %s.log)", name, line, name)
		}
		p.addr = addr
		return p, nil
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	case <-t.C:
		p.stop()
		return nil, fmt.Errorf("%s: no LISTENING line after 10s (see %s.log)", name, name)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited returns a non-nil error if the process has ended.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v", p.name, p.err)
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 3 s.
func (p *proc) stop() {
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(3 * time.Second):
		}
		// The leader may be gone while group members (an nginx worker) remain.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
		live.Delete(p)
	})
}

// killAll stops every process still running, one process group at a time.
func killAll() {
	live.Range(func(k, _ any) bool {
		k.(*proc).stop()
		return true
	})
}

// freePort returns a loopback address that was free a moment ago (for
// programs such as nginx that cannot report the port they bound).
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// waitTCP waits until addr accepts connections, or p exits, or 10 s pass.
func waitTCP(ctx context.Context, p *proc, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if err := p.exited(); err != nil {
			return fmt.Errorf("%w (see %s.log)", err, p.name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not accepting connections after 10s", p.name, addr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var errInterrupted = errors.New("interrupted")
