package harness

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binaries are the daemons built for a test run or the demo.
type Binaries struct{ Milter, Station string }

// BuildDaemons builds avmilter and avstation from the module at root into
// dir, with the build tags given (avtest: the test-only engines of
// internal/daemon). Tests call it once from TestMain.
func BuildDaemons(root, dir string, tags ...string) (Binaries, error) {
	goBin, err := Lookup("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("building the daemons: %w", err)
	}
	args := []string{"build", "-o", dir}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	build := exec.Command(goBin, append(args, "./cmd/avmilter", "./cmd/avstation")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("building the daemons: %v\n%s", err, out)
	}
	return Binaries{Milter: filepath.Join(dir, "avmilter"), Station: filepath.Join(dir, "avstation")}, nil
}

// Daemon is one of our daemons running as a child process, its output in
// LogFile. It is stopped by SIGTERM at the end of the test.
type Daemon struct {
	t           testing.TB
	name        string
	binary      string
	wrap        []string // argv the daemon runs under (ip netns exec NS); nil: none
	args        []string
	cmd         *exec.Cmd
	LogFile     string
	Spool       string
	ActivityDir string // avmilter's activity_dir, private to the test
	RecordsDir  string // avstation's records_dir, private to the test
	Addr        string // what it listens on (host:port)
	MetricsAddr string
}

// WriteSecret writes a secret file of mode 0600 and returns its path.
func WriteSecret(t testing.TB, word string) string {
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte("# shared with the stations\ndefault "+word+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// StartStation starts avstation on addr ("" for a free port) with clamd.
// Extra lines of YAML are appended to its config, after the scanner block:
// lines indented by two spaces are scanner settings, others top-level.
func StartStation(t testing.TB, binary, addr, clamdAddr, secretFile string, extra ...string) *Daemon {
	t.Helper()
	return StartStationClamds(t, binary, addr, []string{clamdAddr}, secretFile, extra...)
}

// StartStationClamds is StartStation with a pool of several clamd.
func StartStationClamds(t testing.TB, binary, addr string, clamdAddrs []string, secretFile string, extra ...string) *Daemon {
	t.Helper()
	return StartStationOpts(t, binary, StationOptions{Addr: addr, Clamd: clamdAddrs, Secret: secretFile, Extra: extra})
}

// StationOptions are the avstation settings a test or the benchmark varies.
type StationOptions struct {
	Addr     string   // "" for a free port
	Clamd    []string // the clamd pool
	Secret   string   // secret file
	LogLevel string   // log.level; "" is debug
	// Extra lines of YAML, after the scanner block: lines indented by
	// two spaces are scanner settings, others top-level.
	Extra []string
	// Netns runs the station inside that namespace; Addr must then be
	// one of its addresses (Netns.Addr:PORT).
	Netns *Netns
}

// StartStationOpts is StartStation with options.
func StartStationOpts(t testing.TB, binary string, o StationOptions) *Daemon {
	t.Helper()
	quoted := make([]string, len(o.Clamd))
	for i, a := range o.Clamd {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	addr := o.Addr
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	}
	level := o.LogLevel
	if level == "" {
		level = "debug"
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`listen: %s
secret_file: %s
spool_dir: %s
records_dir: %s
log:
  level: %s
scanner:
  clamd: [%s]
`, addr, o.Secret, filepath.Join(dir, "spool"), filepath.Join(dir, "records"), level, strings.Join(quoted, ", ")) + strings.Join(o.Extra, "\n") + "\n"
	// records_dir is always set: its default is under /var/lib.
	d := &Daemon{t: t, name: "avstation", Addr: addr, Spool: filepath.Join(dir, "spool"), RecordsDir: filepath.Join(dir, "records")}
	if o.Netns != nil {
		d.wrap = o.Netns.Wrap()
	}
	d.start(binary, writeConfig(t, dir, cfg))
	WaitTCP(t, addr, 10*time.Second)
	return d
}

// MilterOptions are the avmilter settings a test varies.
type MilterOptions struct {
	Station string // station URL; "" scans in-process
	// Stations are more station addresses after Station, one pool.
	Stations []string
	Secret   string // secret file
	Clamd    string // for in-process scanning
	ScanAll  bool
	Policy   string // YAML lines under policy:, indented by two spaces
	Metrics  bool   // serve /metrics on MetricsAddr
	Lists    string // YAML lines under lists:; default *@lists.example.org
	// ActivityDir is activity_dir; "" a directory private to the test
	// (never the default under /var/lib), "off" none.
	ActivityDir string
	Extra       string // more YAML lines, at the top level
	// MemoryBuffer is memory_buffer; "" is 1KiB, so that tests exercise
	// the spool (benchcmp and BenchmarkConcurrentMemory set the default,
	// 8MiB).
	MemoryBuffer string
	LogLevel     string // log.level; "" is debug
	ScanTimeout  string // scan_timeout with a station; "" is 20s
	Scanner      string // more YAML lines under scanner: (in-process), indented by two spaces
}

// StartMilter starts avmilter on a free port.
func StartMilter(t testing.TB, binary string, o MilterOptions) *Daemon {
	t.Helper()
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	var b strings.Builder
	activity := o.ActivityDir
	if activity == "" {
		activity = filepath.Join(dir, "activity")
	}
	buffer := o.MemoryBuffer
	if buffer == "" {
		buffer = "1KiB"
	}
	fmt.Fprintf(&b, "listen: inet:%s\nspool_dir: %s\nactivity_dir: %s\nmemory_buffer: %s\nscan_all: %v\n",
		addr, filepath.Join(dir, "spool"), activity, buffer, o.ScanAll)
	lists := o.Lists
	if lists == "" {
		lists = `  - match: "*@lists.example.org"` + "\n"
	}
	b.WriteString("lists:\n" + lists)
	if o.Station != "" {
		all := []string{fmt.Sprintf("%q", o.Station)}
		for _, s := range o.Stations {
			all = append(all, fmt.Sprintf("%q", s))
		}
		timeout := o.ScanTimeout
		if timeout == "" {
			timeout = "20s"
		}
		fmt.Fprintf(&b, "stations: [%s]\nsecret_file: %s\nscan_timeout: %s\n", strings.Join(all, ", "), o.Secret, timeout)
	} else {
		fmt.Fprintf(&b, "scanner:\n  clamd: [%q]\n%s", o.Clamd, o.Scanner)
	}
	if o.Policy != "" {
		b.WriteString("policy:\n" + o.Policy)
	}
	d := &Daemon{t: t, name: "avmilter", Addr: addr, Spool: filepath.Join(dir, "spool"), ActivityDir: activity}
	if o.Metrics {
		d.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		fmt.Fprintf(&b, "metrics_listen: %s\n", d.MetricsAddr)
	}
	level := o.LogLevel
	if level == "" {
		level = "debug"
	}
	b.WriteString("log:\n  level: " + level + "\n" + o.Extra)
	d.start(binary, writeConfig(t, dir, b.String()))
	WaitTCP(t, addr, 10*time.Second)
	return d
}

func writeConfig(t testing.TB, dir, text string) string {
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (d *Daemon) start(binary, config string) {
	d.t.Helper()
	if d.LogFile == "" {
		d.LogFile = filepath.Join(filepath.Dir(config), d.name+".log")
	}
	logf, err := os.OpenFile(d.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	d.binary = binary
	d.args = []string{"-config", config}
	argv := append(append(append([]string(nil), d.wrap...), binary), d.args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("starting %s: %v", d.name, err)
	}
	cmd := d.cmd
	d.t.Cleanup(func() { stopCmd(cmd) })
}

// Stop ends the daemon with SIGTERM and waits for it.
func (d *Daemon) Stop() { stopCmd(d.cmd) }

// Kill ends the daemon with SIGKILL, as a crash or the OOM killer would:
// no shutdown, no cleanup of its spool. It waits for the process to go.
func (d *Daemon) Kill() {
	if d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Kill()
	_ = d.cmd.Wait()
}

// Restart starts the daemon again with the same config and address.
func (d *Daemon) Restart() {
	d.t.Helper()
	d.start(d.binary, d.args[1])
	WaitTCP(d.t, d.Addr, 10*time.Second)
}

func stopCmd(cmd *exec.Cmd) {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Log returns the daemon's log so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogFile)
	return string(b)
}

// WaitLog waits until the log has a line containing every one of subs.
func (d *Daemon) WaitLog(t testing.TB, timeout time.Duration, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sc := bufio.NewScanner(strings.NewReader(d.Log()))
		for sc.Scan() {
			line := sc.Text()
			all := true
			for _, s := range subs {
				all = all && strings.Contains(line, s)
			}
			if all {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s log has no line with %q:\n%s", d.name, subs, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SpoolEmpty fails the test when the daemon left files in its spool.
func (d *Daemon) SpoolEmpty(t testing.TB) {
	t.Helper()
	left, err := os.ReadDir(d.Spool)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("%s left files in its spool %s: %v", d.name, d.Spool, left)
	}
}

// Metrics returns the text of the daemon's /metrics.
func (d *Daemon) Metrics(t testing.TB, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// PeakRSS is the daemon's peak resident memory so far (VmHWM), in bytes.
func (d *Daemon) PeakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", d.cmd.Process.Pid)
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// ConfigFile is the daemon's config file.
func (d *Daemon) ConfigFile() string { return d.args[1] }

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }
