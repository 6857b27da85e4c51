package harness

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EICAR returns the 68-byte EICAR anti-virus test file. It is assembled from
// two halves so that no file in the repository holds the test string itself
// (which would make scanners flag the source tree).
func EICAR() []byte {
	const a = `X5O!P%@AP[4\PZX54(P^)7CC)7}$`
	const b = `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`
	return []byte(a + b)
}

// EicarSignature is the signature name clamd reports for EICAR with the
// harness's database. clamd appends ".UNOFFICIAL" to names from custom
// signature files: match by prefix.
const EicarSignature = "Eicar-Test-Signature"

// clamdReadyTimeout bounds clamd's start: it loads one signature, about 1 s.
const clamdReadyTimeout = 20 * time.Second

// Clamd is a private clamd listening on 127.0.0.1.
type Clamd struct {
	Addr    string // "tcp:127.0.0.1:PORT", the form scanner configs take
	TCPAddr string // "127.0.0.1:PORT"
	Dir     string // clamd.conf, db/, tmp/, the log and pid files
	LogFile string
	PID     int

	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// StartClamd starts `clamd -c DIR/clamd.conf` in the foreground with a
// database of one EICAR signature, and waits until it answers PING.
func StartClamd(t testing.TB) *Clamd {
	t.Helper()
	return StartClamdWith(t)
}

// StartClamdWith is StartClamd with more signature files (the real
// database's main.cvd, daily.cld, ...) linked into its database directory.
func StartClamdWith(t testing.TB, databases ...string) *Clamd {
	t.Helper()
	return StartClamdOpts(t, ClamdOptions{Databases: databases})
}

// ClamdOptions vary the private clamd.
type ClamdOptions struct {
	Databases []string          // more signature files, as for StartClamdWith
	Settings  map[string]string // clamd.conf settings that replace the harness's, e.g. "StreamMaxLength": "256M"
}

// StartClamdOpts is StartClamd with options.
func StartClamdOpts(t testing.TB, o ClamdOptions) *Clamd {
	t.Helper()
	databases := o.Databases
	bin := Program(t, "clamd")
	dir := t.TempDir()
	recordStarted(dir)
	port := FreePort(t)
	c := &Clamd{
		TCPAddr: fmt.Sprintf("127.0.0.1:%d", port),
		Dir:     dir,
		LogFile: filepath.Join(dir, "clamd.log"),
		exited:  make(chan struct{}),
	}
	c.Addr = "tcp:" + c.TCPAddr
	db := filepath.Join(dir, "db")
	tmp := filepath.Join(dir, "tmp")
	for _, d := range []string{db, tmp} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("harness: clamd: %v", err)
		}
	}
	// A .ndb line: name:target type (0 = any file):offset (* = anywhere):hex.
	ndb := fmt.Sprintf("%s:0:*:%s\n", EicarSignature, hex.EncodeToString(EICAR()))
	if err := os.WriteFile(filepath.Join(db, "test.ndb"), []byte(ndb), 0o644); err != nil {
		t.Fatalf("harness: clamd: %v", err)
	}
	for _, f := range databases {
		if err := os.Symlink(f, filepath.Join(db, filepath.Base(f))); err != nil {
			t.Fatalf("harness: clamd: %v", err)
		}
	}
	ready := clamdReadyTimeout
	if len(databases) > 0 {
		ready = 3 * time.Minute // the full database takes a while to load
	}
	// No User line: clamd keeps running as the test's user. No LocalSocket:
	// TCP only, on loopback.
	conf := strings.Join([]string{
		"Foreground yes",
		"TCPSocket " + fmt.Sprint(port),
		"TCPAddr 127.0.0.1",
		"LogFile " + c.LogFile,
		"LogTime yes",
		"LogClean no",
		"PidFile " + filepath.Join(dir, "clamd.pid"),
		"DatabaseDirectory " + db,
		"TemporaryDirectory " + tmp,
		"OfficialDatabaseOnly no",
		"StreamMaxLength 64M",
		"MaxScanSize 256M",
		"MaxFileSize 64M",
		"MaxThreads 4",
		"ReadTimeout 60",
		"CommandReadTimeout 30",
		"SelfCheck 3600",
		"ScanMail yes",
		"ScanArchive yes",
		"Bytecode no",
	}, "\n")
	conf = replaceSettings(conf, o.Settings) + "\n"
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatalf("harness: clamd: %v", err)
	}

	out, err := os.Create(filepath.Join(dir, "clamd.out"))
	if err != nil {
		t.Fatalf("harness: clamd: %v", err)
	}
	c.cmd = exec.Command(bin, "-c", confPath)
	c.cmd.Stdout = out
	c.cmd.Stderr = out
	// Its own process group, so a ^C to `go test` does not reach it first
	// and Stop decides how it ends.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("harness: start clamd: %v", err)
	}
	out.Close()
	c.PID = c.cmd.Process.Pid
	go func() {
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.Stop)

	if err := c.waitReady(ready); err != nil {
		c.Stop()
		t.Fatalf("harness: clamd did not come up: %v\n--- %s (tail)\n%s\n--- clamd stdout/stderr (tail)\n%s",
			err, c.LogFile, tailFile(c.LogFile, 30), tailFile(filepath.Join(dir, "clamd.out"), 30))
	}
	return c
}

// waitReady polls PING until clamd answers PONG.
func (c *Clamd) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("clamd exited (%v)", c.cmd.ProcessState)
		default:
		}
		if last = c.ping(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG from %s after %v: %w", c.TCPAddr, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping sends "nPING\n" (newline-delimited command, see clamd(8)) and
// expects "PONG".
func (c *Clamd) ping() error {
	conn, err := net.DialTimeout("tcp", c.TCPAddr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("nPING\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop ends clamd (SIGTERM, then SIGKILL after 10 s) and waits for it. It
// may be called more than once, for example by a test that kills clamd in
// the middle of a run, and again by the cleanup.
func (c *Clamd) Stop() {
	c.once.Do(func() {
		if c.cmd == nil || c.cmd.Process == nil {
			return
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
}

// Running reports whether clamd's process is still running.
func (c *Clamd) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// LogTail returns the last n lines of clamd's log file.
func (c *Clamd) LogTail(n int) string {
	return tailFile(c.LogFile, n)
}

// replaceSettings replaces the lines of conf whose setting is a key of
// settings, and appends the settings conf does not have.
func replaceSettings(conf string, settings map[string]string) string {
	lines := strings.Split(conf, "\n")
	done := map[string]bool{}
	for i, l := range lines {
		name, _, _ := strings.Cut(l, " ")
		if v, ok := settings[name]; ok {
			lines[i], done[name] = name+" "+v, true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		if !done[name] {
			lines = append(lines, name+" "+settings[name])
		}
	}
	return strings.Join(lines, "\n")
}

// StartHungClamd listens on 127.0.0.1 like a clamd that is wedged: it
// accepts connections and never reads from them nor answers, until the test
// ends. It returns its address in the form clamd.New takes.
func StartHungClamd(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: hung clamd: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "tcp:" + ln.Addr().String()
}
