package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	fdtls "github.com/frontdoorhq/frontdoor/tls"
)

// Zero-downtime binary upgrade (replaces `php artisan reverb:restart`).
//
// On SIGUSR2 the running process starts its executable again with the same arguments. Every
// listener is bound with SO_REUSEPORT, so the new process binds the same ports while the old one
// still serves. When the new one is listening it says so on an inherited pipe; only then does the
// old one stop accepting and send its WebSocket clients 4200 (reconnect), which lands them on the
// new process. If the new process fails to come up, the old one keeps serving and logs why.
//
// Under systemd (Type=notify, NotifyAccess=all) the new process announces itself as MAINPID.

// errNoUpgrade is why restart is refused outside Linux: the new process must bind the ports the
// old one still serves, which takes Linux's SO_REUSEPORT (fdtls.ReusePort).
var errNoUpgrade = errors.New("zero-downtime restart is supported on Linux only: it needs SO_REUSEPORT with Linux's semantics")

// upgradeEnv names the inherited pipe's descriptor in the new process.
const upgradeEnv = "FRONTDOOR_UPGRADE_FD"

// upgradeTimeout bounds how long the old process waits for the new one to listen.
const upgradeTimeout = 30 * time.Second

// startUpgrade runs the new process and waits until it listens, returning its pid. A nil error
// means the caller should drain and exit.
func startUpgrade(args []string, log zerolog.Logger) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(exe, append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), upgradeEnv+"=3")
	cmd.ExtraFiles = []*os.File{w} // descriptor 3 in the child
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("starting %s: %w", exe, err)
	}
	w.Close()
	log.Info().Int("new_pid", cmd.Process.Pid).Str("exe", exe).Msg("upgrade: new process started, waiting for it to listen")

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err == nil && strings.TrimSpace(line) == "ready" {
			ready <- nil
			return
		}
		ready <- errors.New("the new process exited before listening")
	}()
	select {
	case err := <-ready:
		if err != nil {
			if werr := cmd.Wait(); werr != nil {
				err = fmt.Errorf("%w (%v)", err, werr)
			}
			return 0, fmt.Errorf("%w; its log, pid %d, says why", err, cmd.Process.Pid)
		}
	case <-time.After(upgradeTimeout):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return 0, fmt.Errorf("the new process (pid %d) did not listen within %s", cmd.Process.Pid, upgradeTimeout)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Process.Release() }()
	return pid, nil
}

// upgradeStatusFile is where a server reports the outcome of an upgrade for `frontdoor restart`
// to wait on: beside the pid file (the unit's RuntimeDirectory), else in the temporary directory
// under the server's pid.
func upgradeStatusFile(pidFile string, pid int) string {
	if pidFile != "" {
		return pidFile + ".upgrade"
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("frontdoor-%d.upgrade", pid))
}

// writeUpgradeStatus records "ready <new pid>" or "failed <reason>" for `frontdoor restart`, in
// both places it may look (restart --pid-file or restart --pid).
func writeUpgradeStatus(pidFile string, status string, log zerolog.Logger) {
	paths := []string{upgradeStatusFile("", os.Getpid())}
	if pidFile != "" {
		paths = append(paths, upgradeStatusFile(pidFile, os.Getpid()))
	}
	for _, path := range paths {
		tmp := path + ".tmp"
		err := os.WriteFile(tmp, []byte(status+"\n"), 0o644)
		if err == nil {
			err = os.Rename(tmp, path) // whole, never half-written
		}
		if err != nil {
			log.Warn().Err(err).Str("file", path).Msg("cannot record the upgrade's outcome for frontdoor restart")
		}
	}
}

// announceReady tells whoever waits that this process serves: the old process of an upgrade
// (through the inherited pipe) and systemd (sd_notify READY=1, and MAINPID after an upgrade).
func announceReady(log zerolog.Logger) {
	upgraded := false
	if fd := os.Getenv(upgradeEnv); fd != "" {
		os.Unsetenv(upgradeEnv)
		if n, err := strconv.Atoi(fd); err == nil {
			f := os.NewFile(uintptr(n), "upgrade-pipe")
			_, _ = io.WriteString(f, "ready\n")
			f.Close()
			upgraded = true
		}
	}
	state := "READY=1"
	if upgraded {
		state = fmt.Sprintf("MAINPID=%d\nREADY=1", os.Getpid())
	}
	if err := sdNotify(state); err != nil {
		log.Warn().Err(err).Msg("systemd notification failed")
	}
}

// sdNotify implements the tiny part of sd_notify(3) frontdoor needs: one datagram to
// $NOTIFY_SOCKET. Outside systemd it does nothing.
func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// cmdRestart asks a running frontdoor to replace itself with the binary now on disk.
func cmdRestart(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("restart", stderr)
	pidFile := fs.String("pid-file", "/run/frontdoor.pid", "`file` the running server wrote with --pid-file")
	pid := fs.Int("pid", 0, "process id of the running server (instead of --pid-file)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pidFileUsed := ""
	if *pid == 0 {
		pidFileUsed = *pidFile
		raw, err := os.ReadFile(*pidFile)
		if err != nil {
			fmt.Fprintf(stderr, "frontdoor restart: %v (start serve with --pid-file, or pass --pid)\n", err)
			return 2
		}
		if *pid, err = strconv.Atoi(strings.TrimSpace(string(raw))); err != nil {
			fmt.Fprintf(stderr, "frontdoor restart: %s: invalid pid %q\n", *pidFile, strings.TrimSpace(string(raw)))
			return 2
		}
	}
	if !fdtls.ReusePort {
		fmt.Fprintf(stderr, "frontdoor restart: %v (this is %s); stop and start the server instead\n", errNoUpgrade, runtime.GOOS)
		return 1
	}
	// The outcome arrives in the status file; one left by an earlier upgrade must not answer.
	status := upgradeStatusFile(pidFileUsed, *pid)
	clear := func() { _ = os.Remove(status); _ = os.Remove(upgradeStatusFile("", *pid)) }
	clear()
	if err := signalUpgrade(*pid); err != nil {
		fmt.Fprintf(stderr, "frontdoor restart: signalling pid %d: %v\n", *pid, err)
		return 1
	}
	fmt.Fprintf(stdout, "asked pid %d to upgrade; waiting for the new process to listen\n", *pid)
	deadline := time.Now().Add(upgradeTimeout + 10*time.Second)
	for {
		gone := processGone(*pid) // before the read: a report then exit is not lost
		raw, err := os.ReadFile(status)
		if err == nil && strings.HasSuffix(string(raw), "\n") {
			clear()
			line := strings.TrimSpace(string(raw))
			if newPid, ok := strings.CutPrefix(line, "ready "); ok {
				fmt.Fprintf(stdout, "pid %s serves; pid %d drains its connections and exits\n", newPid, *pid)
				return 0
			}
			fmt.Fprintf(stderr, "frontdoor restart: the upgrade failed, pid %d keeps serving: %s\n", *pid, strings.TrimPrefix(line, "failed "))
			return 1
		}
		if gone {
			fmt.Fprintf(stderr, "frontdoor restart: pid %d exited without reporting a new process\n", *pid)
			return 1
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "frontdoor restart: no outcome from pid %d within %s (is it a frontdoor? its log says more)\n", *pid, upgradeTimeout+10*time.Second)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
}
