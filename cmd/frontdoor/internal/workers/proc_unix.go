//go:build unix

package workers

import "syscall"

// stopGroup sends SIGTERM to the copy's whole process group: Horizon's supervisors and anything
// else the worker started.
func stopGroup(pid int) error { return syscall.Kill(-pid, syscall.SIGTERM) }

// killGroup sends SIGKILL to the copy's whole process group.
func killGroup(pid int) error { return syscall.Kill(-pid, syscall.SIGKILL) }
