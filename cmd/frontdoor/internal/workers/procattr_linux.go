package workers

import "syscall"

// procAttr puts a copy in its own process group, so SIGTERM reaches what the worker started and a
// Ctrl-C in frontdoor's terminal does not reach the workers before frontdoor decides to stop
// them. Pdeathsig: a frontdoor killed outright takes the worker with it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
