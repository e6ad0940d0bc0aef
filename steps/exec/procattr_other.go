//go:build !linux

package exec

import "syscall"

// procAttr: a process group of its own. macOS has no parent-death signal: a command can outlive a
// drydock killed with SIGKILL (Ctrl-C and SIGTERM still stop it with its process group).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
