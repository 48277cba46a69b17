package testenv

import "syscall"

// DieWithParent is the SysProcAttr of a child process a test starts: Linux kills it when the test
// binary dies (Pdeathsig), so a crashed or killed test leaves no php-fpm or redis-server behind.
func DieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
