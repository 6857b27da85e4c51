// Package harness starts real components (clamd, Postfix, an SMTP sink) as
// child processes on 127.0.0.1 for integration tests, and stops them again.
//
// Every Start function takes a testing.TB, registers a t.Cleanup that stops
// only the processes it started (by PID), and calls t.Fatalf with the tail of
// the component's log when the component does not come up. A missing program
// is a failure, never a skip: run scripts/install-deps.sh.
package harness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process may take it before the caller binds it; the components
// started here fail loudly if that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: find free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitTCP polls addr until it accepts a TCP connection, and fails the test
// after timeout.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := waitTCP(addr, timeout, nil); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// waitTCP polls addr until it accepts a connection. It gives up early when
// exited is closed (the process meant to listen there has died).
func waitTCP(addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s: process exited before it listened: %w", addr, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: nothing accepts connections after %v: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tailFile returns the last n lines of a file, or a note saying why it
// cannot.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tailLines(b, n)
}

func tailLines(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return "(log is empty)"
	}
	lines := bytes.Split(b, []byte("\n"))
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// procAlive reports whether pid is a live process. A zombie counts as gone:
// a daemonized process that exits is reparented and may not be reaped at
// once.
func procAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	st, err := procState(pid)
	if err != nil {
		return false
	}
	return st != "Z" && st != "X"
}

// procState returns the one-letter state from /proc/PID/stat.
func procState(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// pid (comm) S ...; comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+3 > len(b) {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return string(b[i+2 : i+3]), nil
}

// waitGone polls until pid is gone or timeout passes.
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for procAlive(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// procsWithEnv lists live processes whose environment holds the exact
// entry kv (for example "MAIL_CONFIG=/tmp/avtest-postfix-123/etc"). That
// is how the processes of one private Postfix instance are told apart from
// any other Postfix on the machine.
func procsWithEnv(kv string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	self := os.Getpid()
	want := []byte(kv)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, v := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(v, want) {
				if procAlive(pid) {
					pids = append(pids, pid)
				}
				break
			}
		}
	}
	return pids
}

// readPIDFile reads the first number in a pid file.
func readPIDFile(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, fmt.Errorf("%s: empty pid file", path)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return pid, nil
}

// started lists the directories of the clamd and Postfix instances this
// process started, so that a check for leftovers looks at its own only
// (other test packages run at the same time).
var started struct {
	sync.Mutex
	dirs []string
}

func recordStarted(dir string) {
	started.Lock()
	started.dirs = append(started.dirs, dir)
	started.Unlock()
}

// StartedDirs returns the directories of every instance started so far.
func StartedDirs() []string {
	started.Lock()
	defer started.Unlock()
	return append([]string(nil), started.dirs...)
}
