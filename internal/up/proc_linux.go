package up

import "syscall"

// sysProcAttr puts the child in its own process group and kills it when
// the thread that started it dies (up crashing or being killed).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
