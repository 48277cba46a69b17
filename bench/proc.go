package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/frontdoorhq/frontdoor/internal/rlimit"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/<pid>/stat; it is 100 on every Linux
// architecture Go supports (the kernel fixes it for the user ABI).
const clockTicks = 100

// procUsage is one reading of a process: CPU time used so far (of it, in the kernel) and
// resident memory.
type procUsage struct {
	cpu, sys time.Duration
	rss      int64
}

// readProc reads utime+stime from /proc/<pid>/stat and VmRSS from /proc/<pid>/status.
func readProc(pid int) (procUsage, error) {
	var u procUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name (field 2) is in parentheses and may contain spaces: parse after ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	u.cpu = time.Duration(utime+stime) * time.Second / clockTicks
	u.sys = time.Duration(stime) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return u, fmt.Errorf("/proc/%d/status: VmRSS %q", pid, rest)
			}
			u.rss = kb << 10
		}
	}
	return u, nil
}

// readProcs sums readProc over pids; a vanished process is an error so a run against a crashed
// server says so instead of reporting zero memory.
func readProcs(pids []int) (procUsage, error) {
	var t procUsage
	for _, pid := range pids {
		u, err := readProc(pid)
		if err != nil {
			return t, err
		}
		t.cpu += u.cpu
		t.sys += u.sys
		t.rss += u.rss
	}
	return t, nil
}

// raiseNoFile lifts the soft open-file limit to the hard limit (tens of thousands of sockets
// need it) and returns the limit in force (0 where there is none).
func raiseNoFile() uint64 {
	cur, hard, err := rlimit.NoFile()
	if err != nil {
		return 0
	}
	if cur < hard && rlimit.SetNoFile(hard, hard) == nil {
		cur = hard
	}
	return cur
}

// procNoFile returns the "Max open files" soft limit of pid as written in /proc/<pid>/limits.
func procNoFile(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// procCommand is pid's command line, shortened, for the report.
func procCommand(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

// listenerPID finds the process that listens on TCP port (IPv4 or IPv6), by matching the
// socket inode in /proc/net/tcp{,6} against /proc/*/fd. It lets `--server-pid auto` find a
// server on this machine without the user looking its pid up.
func listenerPID(port int) (int, error) {
	inodes := map[string]bool{}
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode (field 9)
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			colon := strings.LastIndexByte(fs[1], ':')
			p, err := strconv.ParseInt(fs[1][colon+1:], 16, 32)
			if err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		f.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no process listens on port %d", port)
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	self := os.Getpid()
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !inodes[link] {
			continue
		}
		pid, err := strconv.Atoi(strings.Split(fd, "/")[2])
		if err == nil && pid != self {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("port %d: listening socket found but not its process (permissions?)", port)
}

// machineConditions fills what the report says about the machine.
func machineConditions() Conditions {
	c := Conditions{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				c.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		c.Kernel = strings.TrimSpace(string(b))
	}
	c.LoadAvgStart = loadAvg()
	c.MemoryMB = totalMemoryMB()
	return c
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
