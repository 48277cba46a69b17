//go:build unix && !linux

package workers

import "syscall"

// procAttr puts a copy in its own process group, so SIGTERM reaches what the worker started and a
// Ctrl-C in frontdoor's terminal does not reach the workers before frontdoor decides to stop
// them. There is no Pdeathsig outside Linux: a frontdoor killed outright (SIGKILL) leaves its
// workers running; a normal stop ends them.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
