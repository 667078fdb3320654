//go:build unix && !linux

package up

import "syscall"

// sysProcAttr puts the child in its own process group. Without Linux's
// Pdeathsig, a child outlives up only if up is killed with SIGKILL.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
