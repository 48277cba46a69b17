package bench

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pinning holds the affinity every thread had before pin, to put it back.
type pinning struct {
	saved map[int]unix.CPUSet // thread id → its mask before pinning
	procs map[int]unix.CPUSet // process id → its main thread's mask, for threads made since
}

// pin moves every thread of this process to pinClientCPU and every thread of the server
// processes (and their children, such as Nginx's workers) to pinServerCPU. Threads created later
// inherit the mask of the thread that creates them, so the whole process stays pinned. A server
// that cannot be pinned (another user's process) is an error: a half-pinned run would be
// reported as pinned.
func pin(serverPIDs []int) (*pinning, error) {
	if runtime.NumCPU() < 2 {
		return nil, errors.New("pin: needs at least two CPUs (this process may use " + strconv.Itoa(runtime.NumCPU()) + ")")
	}
	if len(serverPIDs) == 0 {
		return nil, errors.New("pin: no server process to pin (give --server-pid)")
	}
	p := &pinning{saved: map[int]unix.CPUSet{}, procs: map[int]unix.CPUSet{}}
	set := func(pid, cpu int) error {
		var main unix.CPUSet
		if err := unix.SchedGetaffinity(pid, &main); err != nil {
			return fmt.Errorf("pin: pid %d: %w", pid, err)
		}
		p.procs[pid] = main
		for _, tid := range threads(pid) {
			var old unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &old); err != nil {
				continue // the thread ended meanwhile
			}
			var s unix.CPUSet
			s.Set(cpu)
			if err := unix.SchedSetaffinity(tid, &s); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue
				}
				return fmt.Errorf("pin: pid %d thread %d to CPU %d: %w", pid, tid, cpu, err)
			}
			if _, ok := p.saved[tid]; !ok {
				p.saved[tid] = old
			}
		}
		return nil
	}
	var errs []error
	errs = append(errs, set(os.Getpid(), pinClientCPU))
	for _, pid := range withChildren(serverPIDs) {
		errs = append(errs, set(pid, pinServerCPU))
	}
	if err := errors.Join(errs...); err != nil {
		p.unpin()
		return nil, err
	}
	return p, nil
}

// unpin restores every mask pin changed; threads created while pinned get their process's old
// mask.
func (p *pinning) unpin() {
	if p == nil {
		return
	}
	for tid, old := range p.saved {
		_ = unix.SchedSetaffinity(tid, &old)
	}
	for pid, mask := range p.procs {
		for _, tid := range threads(pid) {
			if _, ok := p.saved[tid]; !ok {
				_ = unix.SchedSetaffinity(tid, &mask)
			}
		}
	}
}

// threads lists the thread ids of pid from /proc/<pid>/task.
func threads(pid int) []int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out
}

// withChildren is pids followed by their descendants (/proc/<pid>/task/<tid>/children).
func withChildren(pids []int) []int {
	out := append([]int(nil), pids...)
	for i := 0; i < len(out); i++ {
		for _, tid := range threads(out[i]) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", out[i], tid))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
				}
			}
		}
	}
	return out
}
