package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SendmailRoot is where scripts/install-deps.sh unpacks Debian's Sendmail
// packages (sendmail-bin, sendmail-cf, sendmail-base and the two libraries
// sendmail-bin needs beyond Postfix's). They are unpacked, not installed:
// sendmail-bin conflicts with postfix, and apt would remove Postfix.
const SendmailRoot = "/var/cache/avstation-test/sendmail"

// sendmailBinary is listed in scripts/deps.txt; install-deps.sh clears its
// setgid bit, without which the loader would ignore LD_LIBRARY_PATH.
const sendmailBinary = SendmailRoot + "/usr/libexec/sendmail/sendmail"

// SendmailMC is the deployment's Sendmail lines, relative to the module
// root. The harness builds its .mc around them, changing only S= (the
// milter's test port) and T= (SendmailOptions.MilterTimeouts).
const SendmailMC = "deploy/sendmail/avmilter.mc"

// SendmailTestTimeouts are the T= timeouts of the Sendmail test of a long
// scan (the others keep SendmailMC's). R is short, so that a scan outlasting
// it (kept alive by avmilter's progress packets, each of which restarts R)
// is quick to show; S and R still leave a loaded machine room for the
// replies that come without progress. E is Sendmail's total from end of
// message to the verdict, which progress does not extend: it stays longer
// than the test milters' scan_timeout (20s), as SendmailMC says.
const SendmailTestTimeouts = "S:5s;R:3s;E:60s"

const (
	sendmailHostname     = "avtest-sendmail.localdomain"
	sendmailStartTimeout = 30 * time.Second
	sendmailStopTimeout  = 10 * time.Second
)

// SendmailOptions configures a private Sendmail.
type SendmailOptions struct {
	// Milter is where avmilter listens, "inet:127.0.0.1:PORT".
	Milter string
	// RelayTo is the "127.0.0.1:PORT" all mail is relayed to (a Sink).
	RelayTo string
	// MilterTimeouts replaces the T= of SendmailMC; "" keeps the
	// deployment's.
	MilterTimeouts string
}

// Sendmail is a private Sendmail 8.17 daemon (`sendmail -bD`) in a mount
// namespace of its own, where /etc/hosts, /etc/resolv.conf and
// /etc/nsswitch.conf are the harness's (no lookup leaves the machine: the
// resolver is 127.0.0.1) and /dev/log is the harness's syslog socket, whose
// lines go to LogFile. Its config, queue and pid file are under Dir.
type Sendmail struct {
	SMTPAddr string // "127.0.0.1:PORT"
	Dir      string
	MCFile   string // the .mc the .cf was built from
	CFFile   string
	LogFile  string // what Sendmail sent to syslog
	Banner   string // its SMTP greeting
	PID      int

	cmd      *exec.Cmd
	exited   chan struct{}
	mntNS    string
	syslog   *net.UnixConn
	logDone  chan struct{}
	stopOnce sync.Once
}

// StartSendmail builds a .cf with m4 from Debian's sendmail-cf and
// SendmailMC, starts Sendmail in the foreground, waits for its SMTP banner,
// and registers a cleanup that stops it and every process it forked. It
// needs root (mount namespaces, and Sendmail's daemon mode).
func StartSendmail(t testing.TB, o SendmailOptions) *Sendmail {
	t.Helper()
	bin := Program(t, sendmailBinary)
	m4 := Program(t, "m4")
	unshare := Program(t, "unshare")
	mount := Program(t, "mount")
	sh := Program(t, "sh")
	if os.Geteuid() != 0 {
		t.Fatalf("harness: a private Sendmail needs root (mount namespace, daemon mode); euid is %d", os.Geteuid())
	}
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&os.ModeSetgid != 0 {
		t.Fatalf("harness: %s is setgid (the loader would ignore LD_LIBRARY_PATH): run scripts/install-deps.sh", bin)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}
	deployMC, err := os.ReadFile(filepath.Join(root, SendmailMC))
	if err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}
	// Short: Sendmail's queue and control paths, and the syslog socket.
	base, err := os.MkdirTemp("", "avtest-sendmail-")
	if err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	recordStarted(base)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}
	s := &Sendmail{
		Dir:     base,
		MCFile:  filepath.Join(base, "etc", "sendmail.mc"),
		CFFile:  filepath.Join(base, "etc", "sendmail.cf"),
		LogFile: filepath.Join(base, "sendmail.log"),
		exited:  make(chan struct{}),
		logDone: make(chan struct{}),
	}
	s.SMTPAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	mc, err := sendmailMC(s, o, string(deployMC))
	if err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}
	if err := s.writeFiles(mc); err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}
	if out, err := runM4(m4, s.MCFile, s.CFFile); err != nil {
		t.Fatalf("harness: sendmail: m4 %s: %v\n%s", s.MCFile, err, out)
	}
	if err := s.listenSyslog(); err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}

	becomeSubreaper()
	out, err := os.Create(filepath.Join(base, "sendmail.out"))
	if err != nil {
		t.Fatalf("harness: sendmail: %v", err)
	}
	s.cmd = exec.Command(unshare, "--mount", "--propagation", "private", sh, "-c", s.namespaceScript(mount, bin))
	s.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH=" + sendmailLibPath()}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("harness: sendmail: %v", err)
	}
	out.Close()
	s.PID = s.cmd.Process.Pid
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.Stop)
	if err := s.waitBanner(sendmailStartTimeout); err != nil {
		t.Fatalf("harness: sendmail: no SMTP banner: %v\n--- output\n%s\n--- syslog (tail)\n%s", err, tailFile(out.Name(), 20), s.LogTail(30))
	}
	s.mntNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", s.PID))
	if !strings.Contains(s.Banner, "Sendmail 8.17") {
		t.Fatalf("harness: sendmail: banner %q is not Sendmail 8.17's", s.Banner)
	}
	return s
}

// sendmailMC is the whole .mc: private paths and loopback-only settings,
// then SendmailMC with the test's S= and T=, then the smtp mailers.
func sendmailMC(s *Sendmail, o SendmailOptions, deploy string) (string, error) {
	milterHost, milterPort, err := net.SplitHostPort(strings.TrimPrefix(o.Milter, "inet:"))
	if err != nil || !strings.HasPrefix(o.Milter, "inet:") {
		return "", fmt.Errorf("milter %q: want inet:127.0.0.1:PORT", o.Milter)
	}
	relayHost, relayPort, err := net.SplitHostPort(o.RelayTo)
	if err != nil || net.ParseIP(relayHost) == nil {
		return "", fmt.Errorf("RelayTo %q must be a numeric host:port (tests stay off DNS)", o.RelayTo)
	}
	_, smtpPort, _ := net.SplitHostPort(s.SMTPAddr)
	lines, err := adaptDeployMC(deploy, "inet:"+milterPort+"@"+milterHost, o.MilterTimeouts)
	if err != nil {
		return "", err
	}
	etc := filepath.Join(s.Dir, "etc") + "/"
	q := func(v string) string { return "`" + v + "'" }
	def := func(name, v string) string { return "define(" + q(name) + ", " + q(v) + ")dnl\n" }
	var b strings.Builder
	b.WriteString("divert(-1)\n# Written by test/harness for one test run.\n")
	b.WriteString(def("MAIL_SETTINGS_DIR", etc))
	b.WriteString("divert(0)dnl\n")
	b.WriteString("include(" + q(filepath.Join(SendmailRoot, "usr/share/sendmail/cf/m4/cf.m4")) + ")dnl\n")
	b.WriteString("OSTYPE(`linux')dnl\n")
	b.WriteString(def("confDOMAIN_NAME", sendmailHostname))
	// No lookups beyond the private hosts file, and no probing of the
	// machine's interfaces for names.
	b.WriteString(def("confDONT_PROBE_INTERFACES", "True"))
	b.WriteString(def("confSERVICE_SWITCH_FILE", etc+"service.switch"))
	b.WriteString(def("confHOSTS_FILE", etc+"hosts"))
	b.WriteString(def("confBIND_OPTS", "-DNSRCH -DEFNAMES"))
	b.WriteString(def("QUEUE_DIR", filepath.Join(s.Dir, "mqueue")))
	b.WriteString(def("confPID_FILE", filepath.Join(s.Dir, "sendmail.pid")))
	b.WriteString("undefine(`ALIAS_FILE')dnl\n")
	b.WriteString(def("confLOG_LEVEL", "14"))
	b.WriteString(def("confMILTER_LOG_LEVEL", "14"))
	// Relay everything to the sink at once, in the SMTP session's process.
	b.WriteString(def("SMART_HOST", "relay:["+relayHost+"]"))
	b.WriteString(def("RELAY_MAILER_ARGS", "TCP $h "+relayPort))
	b.WriteString(def("ESMTP_MAILER_ARGS", "TCP $h "+relayPort))
	b.WriteString(def("confDELIVERY_MODE", "interactive"))
	b.WriteString(def("confTO_CONNECT", "5s"))
	b.WriteString(def("confTO_ICONNECT", "5s"))
	b.WriteString(def("confMAX_MESSAGE_SIZE", "67108864"))
	// The machine is shared: its load average must not make Sendmail
	// refuse connections or queue instead of delivering.
	b.WriteString(def("confREFUSE_LA", "10000"))
	b.WriteString(def("confQUEUE_LA", "10000"))
	b.WriteString(def("confDELAY_LA", "0"))
	b.WriteString(def("confAUTH_MECHANISMS", ""))
	b.WriteString("FEATURE(`no_default_msa')dnl\n")
	b.WriteString("FEATURE(`nocanonify')dnl\n")
	b.WriteString("FEATURE(`promiscuous_relay')dnl\n")
	b.WriteString("FEATURE(`accept_unresolvable_domains')dnl\n")
	b.WriteString("FEATURE(`accept_unqualified_senders')dnl\n")
	fmt.Fprintf(&b, "DAEMON_OPTIONS(`Port=%s, Addr=127.0.0.1, Name=MTA, Family=inet')dnl\n", smtpPort)
	b.WriteString("dnl --- " + SendmailMC + " (S= and T= set by the harness)\n")
	b.WriteString(lines)
	b.WriteString("dnl --- end of " + SendmailMC + "\n")
	b.WriteString("MAILER(`smtp')dnl\n")
	return b.String(), nil
}

var (
	milterLine = regexp.MustCompile("(?m)^INPUT_MAIL_FILTER\\(`avmilter', `S=([^,]+), F=T, T=([^']+)'\\)$")
)

// adaptDeployMC returns SendmailMC's text with S= and (if given) T= replaced.
// It fails when the file no longer has the INPUT_MAIL_FILTER line the README
// documents, rather than testing something else.
func adaptDeployMC(text, socket, timeouts string) (string, error) {
	m := milterLine.FindStringSubmatchIndex(text)
	if m == nil {
		return "", fmt.Errorf("%s has no line INPUT_MAIL_FILTER(`avmilter', `S=..., F=T, T=...')", SendmailMC)
	}
	t := text[m[4]:m[5]]
	if timeouts != "" {
		t = timeouts
	}
	line := "INPUT_MAIL_FILTER(`avmilter', `S=" + socket + ", F=T, T=" + t + "')"
	return text[:m[0]] + line + text[m[1]:], nil
}

// writeFiles writes the .mc and what the namespace binds over /etc and
// /dev, and makes the queue directory.
func (s *Sendmail) writeFiles(mc string) error {
	etc := filepath.Join(s.Dir, "etc")
	dev := filepath.Join(s.Dir, "dev")
	for _, d := range []string{etc, dev} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(s.Dir, "mqueue"), 0o700); err != nil {
		return err
	}
	files := map[string]string{
		"etc/sendmail.mc":    mc,
		"etc/service.switch": "hosts files\naliases files\n",
		"etc/hosts":          "127.0.0.1 localhost " + sendmailHostname + " avtest-sendmail\n",
		"etc/resolv.conf":    "# the harness's: nothing answers here, so no query leaves the machine\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
		"etc/nsswitch.conf":  "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\nservices: files\nprotocols: files\n",
	}
	for _, f := range []string{"null", "zero", "random", "urandom"} {
		files["dev/"+f] = "" // bind mount points for the real devices
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// namespaceScript runs inside the new mount namespace: the harness's files
// over the system's (visible to Sendmail only), then Sendmail.
func (s *Sendmail) namespaceScript(mount, bin string) string {
	dev := filepath.Join(s.Dir, "dev")
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, f := range []string{"null", "zero", "random", "urandom"} {
		fmt.Fprintf(&b, "%s --bind /dev/%s %s/%s\n", mount, f, dev, f)
	}
	fmt.Fprintf(&b, "%s --rbind %s /dev\n", mount, dev)
	// A file the system lacks (a minimal chroot may) is not bound: the
	// harness may not create it, and without resolv.conf the resolver
	// asks 127.0.0.1 anyway.
	for _, f := range []string{"hosts", "resolv.conf", "nsswitch.conf"} {
		fmt.Fprintf(&b, "if [ -e /etc/%s ]; then %s --bind %s /etc/%s; fi\n", f, mount, filepath.Join(s.Dir, "etc", f), f)
	}
	fmt.Fprintf(&b, "exec %s -C %s -bD -L sendmail-avtest\n", bin, s.CFFile)
	return b.String()
}

// sendmailLibPath is where the unpacked libraries are (libwrap0,
// liblockfile1); the others are Postfix's and the system's.
func sendmailLibPath() string {
	var dirs []string
	for _, pat := range []string{"usr/lib/*-linux-gnu", "lib/*-linux-gnu"} {
		m, _ := filepath.Glob(filepath.Join(SendmailRoot, pat))
		dirs = append(dirs, m...)
	}
	return strings.Join(dirs, ":")
}

func runM4(m4, mc, cf string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m4, mc)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.Bytes(), err
	}
	return stderr.Bytes(), os.WriteFile(cf, stdout.Bytes(), 0o644)
}

// listenSyslog receives what Sendmail sends to /dev/log and appends each
// datagram as a line to LogFile.
func (s *Sendmail) listenSyslog() error {
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(s.Dir, "dev", "log"), Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("syslog socket: %w", err)
	}
	_ = os.Chmod(filepath.Join(s.Dir, "dev", "log"), 0o666)
	f, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.Close()
		return err
	}
	s.syslog = c
	go func() {
		defer close(s.logDone)
		defer f.Close()
		buf := make([]byte, 64*1024)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			line := bytes.TrimRight(buf[:n], "\x00\n")
			// "<PRI>" then the line; the priority is of no use here.
			if i := bytes.IndexByte(line, '>'); len(line) > 0 && line[0] == '<' && i > 0 {
				line = line[i+1:]
			}
			_, _ = f.Write(append(line, '\n'))
		}
	}()
	return nil
}

func (s *Sendmail) waitBanner(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("sendmail exited: %v", s.cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", s.SMTPAddr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			_, _ = c.Write([]byte("QUIT\r\n"))
			c.Close()
			if rerr == nil && strings.HasPrefix(line, "220") {
				s.Banner = strings.TrimSpace(line)
				return nil
			}
			err = fmt.Errorf("banner %q: %v", strings.TrimSpace(line), rerr)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("%s after %v: %w", s.SMTPAddr, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM to the daemon, then kills whatever is left in its
// mount namespace (its per-connection children), and closes the syslog
// socket. It may be called more than once.
func (s *Sendmail) Stop() { s.stopOnce.Do(s.stop) }

func (s *Sendmail) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(sendmailStopTimeout):
			_ = syscall.Kill(-s.PID, syscall.SIGKILL)
			<-s.exited
		}
		for _, pid := range s.namespacePIDs() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 2*time.Second)
		}
		reapGroup(s.PID, 2*time.Second)
	}
	if s.syslog != nil {
		s.syslog.Close()
		<-s.logDone
	}
}

// namespacePIDs are the processes in this Sendmail's mount namespace: it
// forks per connection, and a child may have left the process group.
func (s *Sendmail) namespacePIDs() []int {
	if s.mntNS == "" {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err == nil && ns == s.mntNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Log is what Sendmail has logged so far.
func (s *Sendmail) Log() string {
	b, err := os.ReadFile(s.LogFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return string(b)
}

// LogTail is the last n lines of Log.
func (s *Sendmail) LogTail(n int) string { return tailFile(s.LogFile, n) }

// WaitLog waits until a line of the log contains every one of subs and
// returns it; it fails the test after timeout.
func (s *Sendmail) WaitLog(t testing.TB, timeout time.Duration, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
	lines:
		for _, line := range strings.Split(s.Log(), "\n") {
			for _, sub := range subs {
				if !strings.Contains(line, sub) {
					continue lines
				}
			}
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: sendmail log has no line with %q after %v\n--- %s (tail)\n%s", subs, timeout, s.LogFile, s.LogTail(30))
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}
