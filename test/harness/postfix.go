package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PostfixOptions configures a private Postfix instance.
type PostfixOptions struct {
	// Milter is smtpd_milters, e.g. "inet:127.0.0.1:7357"; "" for none.
	Milter string
	// RelayTo is the "127.0.0.1:PORT" all mail is relayed to (a Sink).
	// Empty relays to a closed port, so mail stays deferred in the queue.
	RelayTo string
	// MilterDefaultAction is milter_default_action; default "tempfail".
	MilterDefaultAction string
	// ContentTimeout is milter_content_timeout; default 60s.
	ContentTimeout time.Duration
	// Main holds extra main.cf settings; they override the harness's.
	Main map[string]string
}

// Postfix is a private Postfix instance: its own config, queue, data and log
// directories under one temporary directory, and its own SMTP port on
// 127.0.0.1. The system instance (/etc/postfix, /var/spool/postfix) is not
// touched; /etc/postfix/master.cf is only read as a template.
type Postfix struct {
	SMTPAddr  string // "127.0.0.1:PORT"
	ConfigDir string // main.cf, master.cf
	QueueDir  string
	DataDir   string
	LogFile   string // maillog_file
	Dir       string // holds all of the above
	MasterPID int

	postfix  string
	stopOnce sync.Once
}

const (
	postfixStartTimeout  = 30 * time.Second
	postfixBannerTimeout = 15 * time.Second
	postfixStopTimeout   = 10 * time.Second
	postfixHostname      = "avtest.localdomain"
)

// StartPostfix starts a private Postfix with `postfix -c DIR start`, waits
// for its SMTP banner, and registers a cleanup that stops it and removes its
// files. It must run as root (Postfix's master needs it).
func StartPostfix(t testing.TB, o PostfixOptions) *Postfix {
	t.Helper()
	bin := Program(t, "postfix")
	Program(t, "postconf")
	if os.Geteuid() != 0 {
		t.Fatalf("harness: a private Postfix needs root (postfix start runs its master as root); euid is %d", os.Geteuid())
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("harness: postfix user missing (%v): run scripts/install-deps.sh", err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	gid, _ := strconv.Atoi(pfUser.Gid)

	// Not t.TempDir(): its parent is mode 0700 and Postfix's unprivileged
	// daemons must reach the queue. Short, too: sockets live in the queue
	// directory and a Unix socket path holds at most 107 bytes.
	base, err := os.MkdirTemp("", "avtest-postfix-")
	if err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	recordStarted(base)
	p := &Postfix{
		Dir:       base,
		ConfigDir: filepath.Join(base, "etc"),
		QueueDir:  filepath.Join(base, "spool"),
		DataDir:   filepath.Join(base, "data"),
		LogFile:   filepath.Join(base, "log", "postfix.log"),
		postfix:   bin,
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}
	for _, d := range []string{p.ConfigDir, p.QueueDir, p.DataDir, filepath.Dir(p.LogFile)} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("harness: postfix: %v", err)
		}
	}
	if err := os.Chown(p.DataDir, uid, gid); err != nil {
		t.Fatalf("harness: postfix: data_directory must be owned by postfix: %v", err)
	}
	if err := os.Chmod(p.DataDir, 0o700); err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}

	if err := makeQueueDirs(p.QueueDir, uid, postdropGID(t)); err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}

	port := FreePort(t)
	p.SMTPAddr = fmt.Sprintf("127.0.0.1:%d", port)
	master, err := postfixMasterCF(p.SMTPAddr)
	if err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}
	relay := o.RelayTo
	if relay == "" {
		// Nothing listens there: mail is deferred and stays queued.
		relay = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	}
	rhost, rport, err := net.SplitHostPort(relay)
	if err != nil {
		t.Fatalf("harness: postfix: RelayTo %q: %v", relay, err)
	}
	if net.ParseIP(rhost) == nil {
		// A name would need a lookup; tests stay off DNS.
		t.Fatalf("harness: postfix: RelayTo %q must be a numeric address", relay)
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "main.cf"), []byte(postfixMainCF(p, o, rhost, rport)), 0o644); err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}

	// Postfix re-reads a config file until it is at least two seconds old
	// (util/dict.c dict_load_file_xt guards against reading a file while it
	// is written), which makes a start take 2 s. Date the files back.
	past := time.Now().Add(-time.Minute)
	for _, f := range []string{"main.cf", "master.cf"} {
		if err := os.Chtimes(filepath.Join(p.ConfigDir, f), past, past); err != nil {
			t.Fatalf("harness: postfix: %v", err)
		}
	}

	becomeSubreaper()
	ctx, cancel := context.WithTimeout(context.Background(), postfixStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", p.ConfigDir, "start")
	cmd.Env = postfixEnv()
	// Output goes to a file, not a pipe: the daemonized master inherits
	// the descriptors, and waiting for a pipe's EOF costs seconds.
	outPath := filepath.Join(filepath.Dir(p.LogFile), "postfix-start.out")
	outFile, err := os.Create(outPath)
	if err != nil {
		t.Fatalf("harness: postfix: %v", err)
	}
	cmd.Stdout, cmd.Stderr = outFile, outFile
	err = cmd.Run()
	outFile.Close()
	// Stop whatever did start, even if `postfix start` says it failed.
	t.Cleanup(p.Stop)
	if err != nil {
		t.Fatalf("harness: postfix -c %s start: %v\n%s\n--- %s (tail)\n%s", p.ConfigDir, err, tailFile(outPath, 20), p.LogFile, p.LogTail(40))
	}
	pid, err := readPIDFile(filepath.Join(p.QueueDir, "pid", "master.pid"))
	if err != nil {
		t.Fatalf("harness: postfix started but no master pid: %v\n--- %s (tail)\n%s", err, p.LogFile, p.LogTail(40))
	}
	p.MasterPID = pid
	if err := p.waitBanner(postfixBannerTimeout); err != nil {
		t.Fatalf("harness: postfix: no SMTP banner: %v\n--- %s (tail)\n%s", err, p.LogFile, p.LogTail(40))
	}
	return p
}

// makeQueueDirs creates the queue subdirectories with the owners and modes
// of Postfix's postfix-files, and the "quick-start" flag that makes
// `postfix start` skip its integrity checks (post-install create-missing,
// postsuper, find over the queue). Those take about 2 s; a fresh queue
// needs none of them.
func makeQueueDirs(queue string, postfixUID, postdropGID int) error {
	dirs := []struct {
		name string
		uid  int
		gid  int
		mode os.FileMode
	}{
		{"pid", 0, 0, 0o755},
		{"active", postfixUID, 0, 0o700},
		{"bounce", postfixUID, 0, 0o700},
		{"corrupt", postfixUID, 0, 0o700},
		{"defer", postfixUID, 0, 0o700},
		{"deferred", postfixUID, 0, 0o700},
		{"flush", postfixUID, 0, 0o700},
		{"hold", postfixUID, 0, 0o700},
		{"incoming", postfixUID, 0, 0o700},
		{"private", postfixUID, 0, 0o700},
		{"saved", postfixUID, 0, 0o700},
		{"trace", postfixUID, 0, 0o700},
		{"maildrop", postfixUID, postdropGID, 0o730},
		{"public", postfixUID, postdropGID, 0o710},
	}
	for _, d := range dirs {
		path := filepath.Join(queue, d.name)
		if err := os.Mkdir(path, d.mode); err != nil {
			return err
		}
		if err := os.Chown(path, d.uid, d.gid); err != nil {
			return err
		}
		// Mkdir applies the umask; set the mode exactly.
		if err := os.Chmod(path, d.mode); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(queue, "quick-start"), nil, 0o644)
}

// postdropGID is the group of Postfix's setgid queue directories.
func postdropGID(t testing.TB) int {
	t.Helper()
	g, err := user.LookupGroup("postdrop")
	if err != nil {
		t.Fatalf("harness: postdrop group missing (%v): run scripts/install-deps.sh", err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// postfixEnv is the environment for the postfix command: the test's, less
// anything that would point it at another instance.
func postfixEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MAIL_CONFIG=") || strings.HasPrefix(kv, "MAIL_DEBUG=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// postfixMainCF renders main.cf. See postconf(5) for each parameter.
func postfixMainCF(p *Postfix, o PostfixOptions, relayHost, relayPort string) string {
	action := o.MilterDefaultAction
	if action == "" {
		action = "tempfail"
	}
	ct := o.ContentTimeout
	if ct == 0 {
		ct = 60 * time.Second
	}
	s := map[string]string{
		"compatibility_level": "3.6",
		"queue_directory":     p.QueueDir,
		"data_directory":      p.DataDir,
		"mail_owner":          "postfix",
		"setgid_group":        "postdrop",
		// With no syslog, Postfix logs here through its postlog service.
		"maillog_file":          p.LogFile,
		"maillog_file_prefixes": p.Dir,
		"syslog_name":           "postfix-avtest",

		// Loopback only, IPv4 only, no DNS: a numeric relayhost and no
		// name lookups for clients either.
		"inet_interfaces":          "127.0.0.1",
		"inet_protocols":           "ipv4",
		"smtp_bind_address":        "127.0.0.1",
		"myhostname":               postfixHostname,
		"mydomain":                 "localdomain",
		"myorigin":                 "$myhostname",
		"mydestination":            "",
		"relay_domains":            "",
		"local_recipient_maps":     "",
		"alias_maps":               "",
		"alias_database":           "",
		"mynetworks":               "127.0.0.0/8",
		"relayhost":                "[" + relayHost + "]:" + relayPort,
		"smtp_dns_support_level":   "disabled",
		"smtp_host_lookup":         "native",
		"smtpd_peername_lookup":    "no",
		"append_dot_mydomain":      "no",
		"biff":                     "no",
		"smtputf8_enable":          "no",
		"smtp_tls_security_level":  "none",
		"smtpd_tls_security_level": "none",

		// The milter under test.
		"smtpd_milters":          o.Milter,
		"non_smtpd_milters":      "",
		"milter_protocol":        "6",
		"milter_default_action":  action,
		"milter_content_timeout": fmt.Sprintf("%ds", max(1, int(ct.Round(time.Second)/time.Second))),
		"milter_connect_timeout": "10s",
		"milter_command_timeout": "30s",

		// Fast tests: relay at once, retry deferred mail within seconds,
		// no sleeping on client errors, no throttling.
		"in_flow_delay":                         "0",
		"queue_run_delay":                       "1s",
		"minimal_backoff_time":                  "1s",
		"maximal_backoff_time":                  "2s",
		"smtp_connect_timeout":                  "5s",
		"smtpd_error_sleep_time":                "0",
		"smtpd_soft_error_limit":                "1000",
		"smtpd_hard_error_limit":                "1000",
		"smtpd_client_connection_count_limit":   "0",
		"smtpd_client_message_rate_limit":       "0",
		"smtpd_client_connection_rate_limit":    "0",
		"anvil_rate_time_unit":                  "60s",
		"delay_warning_time":                    "0h",
		"default_destination_concurrency_limit": "50",
		"smtp_destination_concurrency_limit":    "50",
		"message_size_limit":                    "67108864",
		"mailbox_size_limit":                    "0",
		"smtpd_banner":                          "$myhostname ESMTP avtest",
		"notify_classes":                        "",
		"smtpd_relay_restrictions":              "permit_mynetworks, reject_unauth_destination",
		"smtpd_recipient_restrictions":          "",
	}
	for k, v := range o.Main {
		s[k] = v
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by test/harness for one test run.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, s[k])
	}
	return b.String()
}

// postfixMasterCF derives master.cf from Debian's: the chroot column set to
// n (a chroot would need files copied into it), and the smtpd service bound
// to smtpAddr instead of the "smtp" port.
func postfixMasterCF(smtpAddr string) (string, error) {
	var src []byte
	var err error
	for _, path := range []string{"/etc/postfix/master.cf", "/usr/share/postfix/master.cf.dist"} {
		if src, err = os.ReadFile(path); err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("no master.cf template (%w): run scripts/install-deps.sh", err)
	}
	var b strings.Builder
	havePostlog, haveSMTPD := false, false
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		// Comments, blank lines and "-o" continuation lines stay as they are.
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || line[0] == ' ' || line[0] == '\t' {
			b.WriteString(line + "\n")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 8 {
			b.WriteString(line + "\n")
			continue
		}
		if f[0] == "smtp" && f[1] == "inet" {
			f[0] = smtpAddr
			haveSMTPD = true
		}
		if f[0] == "postlog" {
			havePostlog = true
		}
		f[4] = "n" // chroot
		b.WriteString(strings.Join(f, " ") + "\n")
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !haveSMTPD {
		fmt.Fprintf(&b, "%s inet n - n - - smtpd\n", smtpAddr)
	}
	if !havePostlog {
		// maillog_file is written by postlogd (Postfix 3.4+).
		b.WriteString("postlog unix-dgram n - n - 1 postlogd\n")
	}
	return b.String(), nil
}

// waitBanner waits for the SMTP greeting on SMTPAddr.
func (p *Postfix) waitBanner(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if !procAlive(p.MasterPID) {
			return fmt.Errorf("master process %d exited", p.MasterPID)
		}
		if last = readBanner(p.SMTPAddr); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s after %v: %w", p.SMTPAddr, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// Any reply means smtpd is up: a milter may refuse at connect time
	// (milter_default_action=reject gives a 5xx greeting).
	if len(line) < 4 || line[0] < '2' || line[0] > '5' || (line[3] != ' ' && line[3] != '-') {
		return fmt.Errorf("banner %q", strings.TrimSpace(line))
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}

// Stop stops the instance (`postfix -c DIR abort`, which sends SIGTERM to
// its master), waits for the master to go, and kills any process of this
// instance that outlived it. Only processes whose environment names this
// instance's config directory are touched. Stop may be called more than
// once.
func (p *Postfix) Stop() { p.stopOnce.Do(p.stop) }

func (p *Postfix) stop() {
	pid := p.MasterPID
	if pid == 0 {
		// `postfix start` may have failed after the master came up.
		pid, _ = readPIDFile(filepath.Join(p.QueueDir, "pid", "master.pid"))
	}
	if pid > 0 && procAlive(pid) {
		ctx, cancel := context.WithTimeout(context.Background(), postfixStopTimeout)
		cmd := exec.CommandContext(ctx, p.postfix, "-c", p.ConfigDir, "abort")
		cmd.Env = postfixEnv()
		if err := cmd.Run(); err != nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		cancel()
		if !waitGone(pid, postfixStopTimeout) {
			// The master leads its own process group (it called setsid).
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			waitGone(pid, 2*time.Second)
		}
	}
	// Daemons outliving the master (none are expected).
	for _, leftover := range procsWithEnv("MAIL_CONFIG=" + p.ConfigDir) {
		_ = syscall.Kill(leftover, syscall.SIGKILL)
		waitGone(leftover, 2*time.Second)
	}
	if pid > 0 {
		reapGroup(pid, 2*time.Second)
	}
}

var subreaperOnce sync.Once

// becomeSubreaper makes this process the reaper of orphaned descendants
// (prctl PR_SET_CHILD_SUBREAPER). The Postfix master daemonizes, so without
// it the master and the daemons it leaves behind are reparented to PID 1,
// and on machines whose PID 1 is slow to reap they linger as zombies. With
// it they become our children and Stop reaps them by process group.
func becomeSubreaper() {
	subreaperOnce.Do(func() {
		const prSetChildSubreaper = 36
		_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	})
}

// reapGroup collects exited children in process group pgid (the master
// called setsid, so its PID is its daemons' group). It waits only on that
// group, never on children that os/exec is waiting for.
func reapGroup(pgid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(-pgid, &ws, syscall.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil: // ECHILD: none of ours left in the group
			return
		case got > 0:
			continue
		}
		// Children of the group exist but have not exited yet.
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Running reports whether the instance's master process is alive.
func (p *Postfix) Running() bool { return p.MasterPID > 0 && procAlive(p.MasterPID) }

// LogTail returns the last n lines of the instance's maillog_file.
func (p *Postfix) LogTail(n int) string {
	return tailFile(p.LogFile, n)
}

// Log returns the whole maillog_file ("" if there is none yet).
func (p *Postfix) Log() string {
	b, err := os.ReadFile(p.LogFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return string(b)
}

// WaitLog waits until the instance's log contains substr and returns the
// first line that does; it fails the test after timeout. Postfix logs a
// delivery ("status=sent") just after the next hop has answered, so a test
// that has seen a message arrive may still have to wait for the line.
func (p *Postfix) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(p.Log(), "\n") {
			if strings.Contains(line, substr) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: postfix log has no %q after %v\n--- %s (tail)\n%s", substr, timeout, p.LogFile, p.LogTail(30))
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}
