package milter

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/bypass"
	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/verdict"
)

// fakeScanner answers with a fixed verdict or error and keeps what it saw.
type fakeScanner struct {
	mu    sync.Mutex
	calls int
	meta  jobproto.Meta
	body  []byte
	v     *verdict.Verdict
	err   error
	delay time.Duration
	// during runs while the message is being scanned, to break something
	// the decision will need.
	during func()
}

func (f *fakeScanner) Scan(ctx context.Context, meta jobproto.Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
	b, _ := io.ReadAll(io.NewSectionReader(body, 0, size))
	f.mu.Lock()
	f.calls++
	f.meta, f.body = meta, b
	f.mu.Unlock()
	if f.during != nil {
		f.during()
	}
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	v := *f.v
	return &v, nil
}

func startMilter(t *testing.T, mutate func(*config.Milter), sc Scanner) (addr string, logs *logBuffer, reg *prometheus.Registry, spool string) {
	t.Helper()
	return startMilterWith(t, mutate, sc, nil)
}

// startMilterWith is startMilter with a bypass list. The milter listens on
// 127.0.0.1 unless mutate sets listen to a unix socket; the address returned
// is then "unix:" and the path, which transact understands.
func startMilterWith(t *testing.T, mutate func(*config.Milter), sc Scanner, bp *bypass.Holder) (addr string, logs *logBuffer, reg *prometheus.Registry, spool string) {
	t.Helper()
	cfg := config.DefaultMilter()
	cfg.Listen = "inet:127.0.0.1:0"
	cfg.Lists = []config.ListPattern{{Match: "*@lists.example.org"}}
	cfg.SpoolDir = t.TempDir()
	cfg.MemoryBuffer = 16 // spill every test message to disk, to see files removed
	if mutate != nil {
		mutate(&cfg)
	}
	logs = &logBuffer{}
	reg = prometheus.NewRegistry()
	if err := cfg.Prepare(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(&cfg, sc, bp, slog.New(slog.NewTextHandler(logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	addr = ln.Addr().String()
	if ln.Addr().Network() == "unix" {
		addr = "unix:" + addr
	}
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if left, _ := os.ReadDir(cfg.SpoolDir); len(left) != 0 {
			t.Errorf("spool files left: %v", left)
		}
	})
	return addr, logs, reg, cfg.SpoolDir
}

// logBuffer is the log the sessions write while the test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor returns the first log line containing every one of subs, waiting
// up to 10 s for it.
func waitFor(t *testing.T, logs *logBuffer, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, line := range strings.Split(logs.String(), "\n") {
			if containsAll(line, subs) {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", subs, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

type result struct {
	dataAct *milter.Action // reply to DATA
	act     *milter.Action // reply at end of message
	mods    []milter.ModifyAction
}

// transact drives one message through the milter as Postfix would.
func transact(t testing.TB, addr string, rcpts []string, headers [][2]string, body string) result {
	t.Helper()
	return transactTimeout(t, addr, rcpts, headers, body, 30*time.Second)
}

// transactTimeout is transact with the MTA's read timeout for each reply,
// as Postfix's milter_content_timeout.
func transactTimeout(t testing.TB, addr string, rcpts []string, headers [][2]string, body string, timeout time.Duration) result {
	t.Helper()
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	c := milter.NewClient(network, addr, milter.WithReadTimeout(timeout))
	macros := milter.NewMacroBag()
	s, err := c.Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	must := func(a *milter.Action, err error) *milter.Action {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	must(s.Conn("client.example", milter.FamilyInet, 4321, "192.0.2.1"))
	must(s.Helo("client.example"))
	must(s.Mail("sender@example.com", ""))
	for _, r := range rcpts {
		must(s.Rcpt(r, ""))
	}
	macros.Set(milter.MacroQueueId, "4ABCDEF")
	var res result
	res.dataAct = must(s.DataStart())
	if res.dataAct.Type == milter.ActionAccept {
		return res
	}
	for _, h := range headers {
		must(s.HeaderField(h[0], h[1], nil))
	}
	must(s.HeaderEnd())
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	res.mods, res.act = mods, act
	if act == nil {
		mods, act, err := s.End()
		if err != nil {
			t.Fatal(err)
		}
		res.mods, res.act = mods, act
	}
	return res
}

func infectedVerdict() *verdict.Verdict {
	v := &verdict.Verdict{Scanner: "avstation test on scan1"}
	v.Add(verdict.Finding{Path: "2", FileName: "eicar.com", Kind: verdict.KindVirus, Threat: "Eicar-Test-Signature"})
	return v
}

var subject = [][2]string{{"From", " sender@example.com"}, {"Subject", " hello"}}

func TestMessageNotForAListIsAcceptedAtEndOfEnvelope(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict()}
	addr, _, reg, _ := startMilter(t, nil, fs)
	res := transact(t, addr, []string{"someone@example.org"}, subject, "body\r\n")
	if res.dataAct.Type != milter.ActionAccept {
		t.Fatalf("DATA answered %v, want Accept", res.dataAct)
	}
	if fs.calls != 0 {
		t.Errorf("scanner called %d times for mail to no list", fs.calls)
	}
	if n := counterValue(t, reg, "avmilter_not_list_bound_total"); n != 1 {
		t.Errorf("not_list_bound = %v", n)
	}
}

func TestScanAllScansEveryMessage(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict()}
	addr, _, _, _ := startMilter(t, func(c *config.Milter) { c.ScanAll = true }, fs)
	res := transact(t, addr, []string{"someone@example.org"}, subject, "body\r\n")
	if res.act == nil || res.act.SMTPCode != 550 {
		t.Fatalf("got %+v, want 550", res.act)
	}
	if !strings.Contains(res.act.SMTPReply, "Your posting has been rejected because it contains the 'Eicar-Test-Signature' virus in attachment 'eicar.com'") {
		t.Errorf("reply %q", res.act.SMTPReply)
	}
}

func TestListMailDecisions(t *testing.T) {
	clean := &verdict.Verdict{Scanner: "avstation test on scan1"}
	clean.Settle()
	tests := []struct {
		name    string
		mutate  func(*config.Milter)
		scanner *fakeScanner
		headers [][2]string
		check   func(t *testing.T, r result)
		logLine string
	}{
		{"clean is tagged", nil, &fakeScanner{v: clean}, subject, func(t *testing.T, r result) {
			wantAccept(t, r)
			wantHeader(t, r, "X-Virus-Status", "Clean")
			wantHeader(t, r, "X-Virus-Scanned", "avstation test on scan1")
		}, "outcome=clean action=accept"},
		{"forged status header is removed", nil, &fakeScanner{v: clean},
			append(subject, [2]string{"X-Virus-Status", " Clean"}, [2]string{"x-virus-status", " Clean"}), func(t *testing.T, r result) {
				wantAccept(t, r)
				var removed []int
				for _, m := range r.mods {
					if m.Type == milter.ActionChangeHeader && m.HeaderName == "X-Virus-Status" && m.HeaderValue == "" {
						removed = append(removed, int(m.HeaderIndex))
					}
				}
				if len(removed) != 2 || removed[0] != 2 || removed[1] != 1 {
					t.Errorf("removed header indexes %v, want [2 1]; mods %v", removed, r.mods)
				}
			}, "outcome=clean"},
		{"infected is rejected naming list, threat, file", nil, &fakeScanner{v: infectedVerdict()}, subject, func(t *testing.T, r result) {
			if r.act.SMTPCode != 550 || !strings.Contains(r.act.SMTPReply, "5.7.1 Your posting to the dev list has been rejected because it contains the 'Eicar-Test-Signature' virus in attachment 'eicar.com'.") {
				t.Errorf("got %v", r.act)
			}
		}, "outcome=infected action=reject lists=[dev] from=sender@example.com rcpts=2"},
		{"infected discarded", func(c *config.Milter) { c.Policy.Actions.Infected.Action = "discard" }, &fakeScanner{v: infectedVerdict()}, subject, func(t *testing.T, r result) {
			if r.act.Type != milter.ActionDiscard {
				t.Errorf("got %v", r.act)
			}
		}, "outcome=infected action=discard"},
		{"infected tagged", func(c *config.Milter) { c.Policy.Actions.Infected.Action = "tag" }, &fakeScanner{v: infectedVerdict()}, subject, func(t *testing.T, r result) {
			wantAccept(t, r)
			wantHeader(t, r, "X-Virus-Status", "Infected (Eicar-Test-Signature)")
		}, "threat=Eicar-Test-Signature file=eicar.com"},
		{"station down tempfails", nil, &fakeScanner{err: errors.New("station http://x: connection refused")}, subject, func(t *testing.T, r result) {
			if r.act.SMTPCode != 451 || !strings.Contains(r.act.SMTPReply, "4.7.1") {
				t.Errorf("got %v", r.act)
			}
		}, "outcome=station-failure action=tempfail"},
		{"scan timeout tempfails", func(c *config.Milter) { c.ScanTimeout = 200 * time.Millisecond }, &fakeScanner{v: clean, delay: time.Minute}, subject, func(t *testing.T, r result) {
			if r.act.SMTPCode != 451 {
				t.Errorf("got %v", r.act)
			}
		}, "deadline exceeded"},
		{"slow scan sends progress and finishes", func(c *config.Milter) { c.ProgressInterval = 20 * time.Millisecond }, &fakeScanner{v: clean, delay: 300 * time.Millisecond}, subject, func(t *testing.T, r result) {
			wantAccept(t, r)
		}, "outcome=clean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, logs, _, _ := startMilter(t, tt.mutate, tt.scanner)
			r := transact(t, addr, []string{"Dev@lists.example.org", "other@example.org"}, tt.headers, "line one\r\nline two\r\n")
			if r.act == nil {
				t.Fatal("no action at end of message")
			}
			tt.check(t, r)
			if !strings.Contains(logs.String(), tt.logLine) || !strings.Contains(logs.String(), "queue_id=4ABCDEF") {
				t.Errorf("log does not contain %q and the queue id:\n%s", tt.logLine, logs)
			}
			fs := tt.scanner
			if fs.meta.QueueID != "4ABCDEF" || fs.meta.JobID == "" || len(fs.meta.Lists) != 1 || fs.meta.Sender != "sender@example.com" {
				t.Errorf("meta %+v", fs.meta)
			}
			// The scanner sees the message as received: headers, blank line, body, CRLF.
			if !bytes.HasPrefix(fs.body, []byte("From: sender@example.com\r\nSubject: hello\r\n")) ||
				!bytes.HasSuffix(fs.body, []byte("\r\n\r\nline one\r\nline two\r\n")) {
				t.Errorf("scanner saw %q", fs.body)
			}
		})
	}
}

// TestProgressKeepsTheMTAWaiting: a scan three times longer than the MTA's
// timeout succeeds because progress packets reset the MTA's timer.
func TestProgressKeepsTheMTAWaiting(t *testing.T) {
	clean := &verdict.Verdict{Scanner: "s"}
	clean.Settle()
	for _, tt := range []struct {
		name     string
		interval time.Duration
		ok       bool
	}{
		{"with progress", 50 * time.Millisecond, true},
		{"progress too rare", 10 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Generous margins: the MTA waits 1 s between packets, progress
			// comes every 50 ms, so only a stalled machine could fail it.
			fs := &fakeScanner{v: clean, delay: 3 * time.Second}
			addr, _, _, _ := startMilter(t, func(c *config.Milter) { c.ProgressInterval = tt.interval }, fs)
			s := envelope(t, addr, "192.0.2.1", "a@example.com", milter.WithReadTimeout(time.Second))
			s.HeaderField("Subject", " x", nil)
			s.HeaderEnd()
			_, act, err := s.BodyReadFrom(strings.NewReader("body\r\n"))
			if tt.ok && (err != nil || act == nil || act.Type != milter.ActionAccept) {
				t.Errorf("got %v, %v; want Accept", act, err)
			}
			if !tt.ok && err == nil {
				t.Errorf("got %v; want the MTA to time out", act)
			}
		})
	}
}

// envelope opens a milter session as an MTA does for one message to
// dev@lists.example.org from client (an IP) and sender, up to DATA.
func envelope(t *testing.T, addr, client, sender string, opts ...milter.Option) *milter.ClientSession {
	t.Helper()
	s, err := milter.NewClient("tcp", addr, opts...).Session(milter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	s.Conn("client.example", milter.FamilyInet, 4321, client)
	s.Helo("client.example")
	s.Mail(sender, "")
	s.Rcpt("dev@lists.example.org", "")
	s.DataStart()
	return s
}

func wantAccept(t *testing.T, r result) {
	t.Helper()
	if r.act.Type != milter.ActionAccept {
		t.Fatalf("got %v, want Accept", r.act)
	}
}

// wantHeader finds an added header. go-milter's client, like Postfix,
// negotiates the leading-space option, so the value brings its own space.
func wantHeader(t *testing.T, r result, name, value string) {
	t.Helper()
	for _, m := range r.mods {
		if m.Type == milter.ActionAddHeader && m.HeaderName == name && m.HeaderValue == " "+value {
			return
		}
	}
	t.Errorf("no header %s: %s in %v", name, value, r.mods)
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
