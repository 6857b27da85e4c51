package external

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/test/harness"
)

// fakeScan is the absolute path of testdata/fakescan.sh, made executable.
func fakeScan(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "fakescan.sh"))
	if err != nil {
		t.Fatal(err)
	}
	// Git keeps the x bit, but a checkout through other tools may not.
	if err := os.Chmod(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeConfig runs fakescan.sh FILE PIDFILE with its own temp dir.
func fakeConfig(t *testing.T, pidFile string) Config {
	t.Helper()
	return Config{
		Name:          "fake",
		Path:          fakeScan(t),
		Args:          []string{"{file}", pidFile},
		InfectedCodes: []int{1},
		CleanCodes:    []int{0},
		ThreatPattern: `(Test\.[A-Za-z]+)`,
		Timeout:       10 * time.Second,
		TempDir:       t.TempDir(),
	}
}

// assertEmptyDir fails the test unless dir holds nothing.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("temp dir %s: %s left behind", dir, e.Name())
	}
}

// assertGroupGone fails the test if a live (non-zombie) process is still in
// the process group whose ID is in pidFile, a second after the run.
func assertGroupGone(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the scanner wrote no pid file: %v", err)
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// SIGKILL is delivered when the process next runs: allow a moment.
	deadline := time.Now().Add(time.Second)
	for {
		left := groupMembers(t, pgid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has live processes: %v", pgid, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupMembers lists the live processes of group pgid from /proc/PID/stat:
// "pid (comm) state ppid pgrp ...". Zombies do not count: PID 1 of a
// container need not reap the orphans it inherits.
func groupMembers(t *testing.T, pgid int) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			out = append(out, e.Name()+" "+s[:i+1])
		}
	}
	return out
}

func TestScan(t *testing.T) {
	tests := []struct {
		name       string
		content    string
		config     func(*Config)
		wantFound  bool
		wantThreat string
		wantErr    string // substring of the error; "" for none
		wantRaw    string // substring of Raw
		rawLen     int    // exact length of Raw, when not 0
		within     time.Duration
		wantKind   error // engineerr kind of the error, nil for none
	}{
		{name: "clean", content: "hello world", wantRaw: "mode 600 dirmode 700"},
		{name: "infected", content: "a BAD thing", wantFound: true, wantThreat: "Test.Bad", wantRaw: "FOUND: Test.Bad"},
		{name: "infected without pattern", content: "BAD", config: func(c *Config) { c.ThreatPattern = "" },
			wantFound: true, wantThreat: ""},
		{name: "pattern without group", content: "BAD", config: func(c *Config) { c.ThreatPattern = `Test\.\w+` },
			wantFound: true, wantThreat: "Test.Bad"},
		{name: "pattern without match", content: "BAD", config: func(c *Config) { c.ThreatPattern = `NOPE (\w+)` },
			wantFound: true, wantThreat: ""},
		{name: "file as part of an argument", content: "BAD", config: func(c *Config) { c.Args[0] = "--file={file}" },
			wantFound: true, wantThreat: "Test.Bad"},
		{name: "other exit code", content: "BROKEN", wantErr: "external fake: exit code 2: ERROR: broken"},
		{name: "infected code not configured", content: "BAD", config: func(c *Config) { c.InfectedCodes = []int{3} },
			wantErr: "external fake: exit code 1: "},
		{name: "signal", content: "CRASH",
			wantErr: "external fake: killed by signal SIGSEGV (segmentation fault): about to crash"},
		{name: "timeout", content: "SLOW", config: func(c *Config) { c.Timeout = 300 * time.Millisecond },
			wantErr: "external fake: no answer within 300ms (timeout)", within: 1500 * time.Millisecond, wantKind: engineerr.ErrTimeout},
		{name: "deleted means infected", content: "DELETE", config: func(c *Config) { c.DeletedMeansInfected = true },
			wantFound: true, wantThreat: "Test.Deleted"},
		{name: "deleted ignored", content: "DELETE", wantRaw: "deleted"},
		{name: "kept with deletion check", content: "hello", config: func(c *Config) { c.DeletedMeansInfected = true }},
		{name: "background child", content: "FORK", wantFound: true, wantThreat: "Test.Fork", within: 3 * time.Second},
		{name: "litter and permissions", content: "LITTER"},
		{name: "output bounded", content: "NOISY", rawLen: maxRaw, wantRaw: "mode 600"},
		{name: "threat from stderr", content: "NOISY", config: func(c *Config) { c.InfectedCodes, c.CleanCodes = []int{0}, []int{1} },
			wantFound: true, wantThreat: "Test.Noise"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			c := fakeConfig(t, pidFile)
			if tc.config != nil {
				tc.config(&c)
			}
			e, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			d, err := e.Scan(t.Context(), strings.NewReader(tc.content))
			elapsed := time.Since(start)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Scan: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("Scan: no error, want %q (detection %+v)", tc.wantErr, d)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("Scan: error %q, want it to contain %q", err, tc.wantErr)
			}
			if err != nil {
				for _, k := range []error{engineerr.ErrTimeout, engineerr.ErrUnreachable, engineerr.ErrProtocol, engineerr.ErrLimit} {
					if errors.Is(err, k) != (k == tc.wantKind) {
						t.Errorf("Scan: %v: errors.Is(%v) = %v", err, k, !(k == tc.wantKind))
					}
				}
			}
			if err == nil && (d.Found != tc.wantFound || d.Threat != tc.wantThreat) {
				t.Errorf("Scan: Found %v Threat %q, want %v %q (raw %q)", d.Found, d.Threat, tc.wantFound, tc.wantThreat, d.Raw)
			}
			if !strings.Contains(d.Raw, tc.wantRaw) {
				t.Errorf("Raw %q does not contain %q", d.Raw, tc.wantRaw)
			}
			if len(d.Raw) > maxRaw || (tc.rawLen != 0 && len(d.Raw) != tc.rawLen) {
				t.Errorf("len(Raw) = %d, want %d (at most %d)", len(d.Raw), tc.rawLen, maxRaw)
			}
			if tc.within != 0 && elapsed > tc.within {
				t.Errorf("Scan took %v, want at most %v", elapsed, tc.within)
			}
			assertEmptyDir(t, c.TempDir)
			assertGroupGone(t, pidFile)
		})
	}
}

// TestScanConcurrency runs two 0.3 s scans at once through one slot: they
// take turns.
func TestScanConcurrency(t *testing.T) {
	c := fakeConfig(t, "")
	c.Concurrency = 1
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if d, err := e.Scan(t.Context(), strings.NewReader("NAP")); err != nil || d.Found {
				t.Errorf("Scan: %+v, %v; want clean", d, err)
			}
		})
	}
	wg.Wait()
	if elapsed := time.Since(start); elapsed < 600*time.Millisecond {
		t.Errorf("two 0.3 s scans with concurrency 1 took %v, want at least 600ms", elapsed)
	}
	assertEmptyDir(t, c.TempDir)
}

// TestScanCancel cancels a run in progress and a scan waiting for a slot.
func TestScanCancel(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := fakeConfig(t, pidFile)
	c.Concurrency = 1
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := e.Scan(ctx, strings.NewReader("SLOW"))
		done <- err
	}()
	for { // until the slow run has started
		if _, err := os.Stat(pidFile); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	wctx, wcancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer wcancel()
	_, err = e.Scan(wctx, strings.NewReader("hello"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for a free run") {
		t.Errorf("Scan while the only slot is taken: %v, want a deadline error while waiting", err)
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Scan: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled Scan did not return")
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("cancelled Scan returned after %v", elapsed)
	}
	assertEmptyDir(t, c.TempDir)
	assertGroupGone(t, pidFile)
}

// TestScanGrep uses grep as a scanner whose codes are the other way round:
// 0 (a line matched) is infected, 1 is clean, 2 is trouble.
func TestScanGrep(t *testing.T) {
	tmp := t.TempDir()
	e, err := New(Config{
		Name:          "grep",
		Path:          harness.Program(t, "grep"),
		Args:          []string{"--only-matching", "--regexp=EVIL-[0-9]*", "--", "{file}"},
		InfectedCodes: []int{0},
		CleanCodes:    []int{1},
		ThreatPattern: `EVIL-\d+`,
		TempDir:       tmp,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		content string
		found   bool
		threat  string
	}{
		{"nothing here", false, ""},
		{"x EVIL-42 y", true, "EVIL-42"},
		// What the mail says is data, never a command: no shell sees it.
		{"$(touch pwned); `touch pwned`", false, ""},
	} {
		d, err := e.Scan(t.Context(), strings.NewReader(tc.content))
		if err != nil || d.Found != tc.found || d.Threat != tc.threat {
			t.Errorf("Scan(%q) = %+v, %v; want Found %v Threat %q", tc.content, d, err, tc.found, tc.threat)
		}
	}
	if _, err := os.Stat("pwned"); err == nil {
		t.Error("a shell ran the content")
	}
	assertEmptyDir(t, tmp)
}

func TestScanDefaultTempDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	c := fakeConfig(t, "")
	c.TempDir = ""
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Scan(t.Context(), strings.NewReader("hello"))
	if err != nil || d.Found {
		t.Fatalf("Scan: %+v, %v", d, err)
	}
	if !strings.Contains(d.Raw, "/avstation-external-") || !strings.Contains(d.Raw, tmp) {
		t.Errorf("Raw %q: the file was not under $TMPDIR %s", d.Raw, tmp)
	}
	assertEmptyDir(t, tmp)
}

func TestVersion(t *testing.T) {
	c := fakeConfig(t, "")
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "version line", args: []string{"--version"}, want: "fakescan 1.2.3 (test double)"},
		{name: "no version args", want: ""},
		{name: "failing", args: []string{"/nonexistent/file"}, wantErr: "external fake: version: exit code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := c
			c.VersionArgs = tc.args
			e, err := New(c)
			if err != nil {
				t.Fatal(err)
			}
			v, err := e.Version(t.Context())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Version: %+v, %v; want error %q", v, err, tc.wantErr)
				}
				return
			}
			if err != nil || v.Name != "fake" || v.Version != tc.want {
				t.Errorf("Version: %+v, %v; want {fake %q}", v, err, tc.want)
			}
			assertEmptyDir(t, c.TempDir)
		})
	}
}
