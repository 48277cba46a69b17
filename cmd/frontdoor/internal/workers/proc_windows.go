package workers

import (
	"os"
	"syscall"
)

// procAttr gives a copy its own console process group, so a Ctrl-C in frontdoor's console does
// not reach the workers before frontdoor decides to stop them.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// stopGroup kills the copy at once: Windows has no SIGTERM to ask a console program to finish its
// job, so stop_timeout does not apply, and processes the worker started itself are not killed
// with it (there are no process groups to signal). Workers on Windows are for development.
func stopGroup(pid int) error { return killGroup(pid) }

// killGroup kills the copy (TerminateProcess).
func killGroup(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}
