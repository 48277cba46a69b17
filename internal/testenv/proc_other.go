//go:build !linux

package testenv

import "syscall"

// DieWithParent is the SysProcAttr of a child process a test starts. Outside Linux there is no
// Pdeathsig: the child is stopped by the test's cleanup only, so a test binary killed outright
// may leave it running.
func DieWithParent() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
