package exec

import "syscall"

// procAttr: a process group of its own, and SIGKILL when drydock dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
