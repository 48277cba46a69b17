package workerstest

import "os"

// Gone reports whether pid has exited: Windows opens no handle to a process that is gone.
func Gone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	_ = p.Release()
	return false
}
