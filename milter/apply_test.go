package milter

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/d--j/go-milter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/policy"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/verdict"
)

// TestRefusals: every way applying a decision can end in a refusal, with
// the reply the MTA gives and the cause only the log sees.
func TestRefusals(t *testing.T) {
	multipart := [][2]string{{"From", " sender@example.com"}, {"Subject", " hello"},
		{"MIME-Version", " 1.0"}, {"Content-Type", ` multipart/mixed; boundary="b"`}}
	body := "--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/octet-stream; name=eicar.com\r\n\r\nEVIL\r\n--b--\r\n"
	notADir := func(t *testing.T) string {
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		return filepath.Join(f, "quarantine") // ENOTDIR, even for root
	}
	tests := []struct {
		name     string
		mutate   func(t *testing.T, c *config.Milter)
		opts     []milter.Option
		during   func(c *config.Milter) func()
		code     uint16
		reply    string // the whole reply the MTA gets
		logCause string
	}{
		{"quarantine fails: the sender retries", func(t *testing.T, c *config.Milter) {
			c.Policy.Actions.Infected.Quarantine = true
			c.Quarantine.Dir = notADir(t)
		}, nil, nil, 451, "451 4.3.0 Temporary failure; please try again later.", "quarantine: "},
		{"strip fails here (disk): the sender retries", func(t *testing.T, c *config.Milter) {
			c.Policy.Actions.Infected.Action = "strip"
		}, nil, func(c *config.Milter) func() {
			// The held body is open already; the rewritten one cannot be
			// made once the spool directory is gone.
			return func() {
				os.RemoveAll(c.SpoolDir)
				os.WriteFile(c.SpoolDir, nil, 0o600)
			}
		}, 451, "451 4.3.0 Temporary failure; please try again later.", "strip: "},
		{"the MTA does not allow a new body: rejected as if not stripped", func(t *testing.T, c *config.Milter) {
			c.Policy.Actions.Infected.Action = "strip"
		}, []milter.Option{milter.WithoutAction(milter.OptChangeBody)}, nil,
			550, "550 5.7.1 Your posting to the dev list has been rejected because it contains the 'Eicar-Test-Signature' virus in attachment 'eicar.com'. You are strongly advised to check your computer for viruses.",
			"the MTA does not allow replacing the body"},
		{"the admin's reply for a tempfail", func(t *testing.T, c *config.Milter) {
			c.Policy.Actions.Infected.Action = "tempfail"
			c.Policy.Actions.Infected.Reply = "Held for %%VirusName%%; try later"
		}, nil, nil, 451, "451 4.7.1 Held for Eicar-Test-Signature; try later", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fakeScanner{v: infectedVerdict()}
			var cfg *config.Milter
			addr, logs, _, _ := startMilter(t, func(c *config.Milter) {
				tt.mutate(t, c)
				cfg = c
			}, fs)
			if tt.during != nil {
				fs.during = tt.during(cfg)
			}
			s := envelope(t, addr, "192.0.2.1", "sender@example.com", append([]milter.Option{milter.WithReadTimeout(10 * time.Second)}, tt.opts...)...)
			for _, h := range multipart {
				s.HeaderField(h[0], h[1], nil)
			}
			s.HeaderEnd()
			_, act, err := s.BodyReadFrom(strings.NewReader(body))
			if err != nil || act == nil {
				t.Fatalf("end of message: %v, %v", act, err)
			}
			if act.SMTPCode != tt.code || strings.TrimSpace(act.SMTPReply) != tt.reply {
				t.Errorf("MTA told %d %q\nwant %d %q", act.SMTPCode, act.SMTPReply, tt.code, tt.reply)
			}
			line := waitFor(t, logs, "message scanned")
			if !strings.Contains(line, `reply="`+tt.reply+`"`) {
				t.Errorf("log line does not give the reply:\n%s", line)
			}
			if tt.logCause != "" && !strings.Contains(line, "apply_err=") || !strings.Contains(line, tt.logCause) {
				t.Errorf("log line does not give the cause %q:\n%s", tt.logCause, line)
			}
		})
	}
}

// TestMTALostWhileDeciding: the MTA goes away during the scan; nobody is
// told anything, the log says what happened and the spool is emptied.
func TestMTALostWhileDeciding(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict(), delay: 500 * time.Millisecond}
	addr, logs, _, spool := startMilter(t, func(c *config.Milter) { c.ProgressInterval = 50 * time.Millisecond }, fs)
	d := &keepConn{}
	s := envelope(t, addr, "192.0.2.1", "sender@example.com", milter.WithReadTimeout(10*time.Second), milter.WithDialer(d))
	s.HeaderField("Subject", " hello", nil)
	s.HeaderEnd()
	s.BodyChunk([]byte("body\r\n"))
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		s.End()
	}()
	time.Sleep(100 * time.Millisecond)
	d.conn.Close() // the MTA goes away in the middle of the scan
	<-ended
	line := waitFor(t, logs, "message scanned")
	for _, want := range []string{"action=tempfail", `reply="451 4.4.2 `, "apply_err=", "MTA connection lost"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line without %q:\n%s", want, line)
		}
	}
	if !strings.Contains(line, "level=ERROR") {
		t.Errorf("a lost MTA is not logged as an error:\n%s", line)
	}
	deadline := time.Now().Add(10 * time.Second)
	for left, _ := os.ReadDir(spool); len(left) > 0; left, _ = os.ReadDir(spool) {
		if time.Now().After(deadline) {
			t.Fatalf("spool files left: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keepConn dials as go-milter's client does and keeps the connection, so
// that a test can cut it from outside.
type keepConn struct{ conn net.Conn }

func (k *keepConn) Dial(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	k.conn = c
	return c, err
}

// TestServerNeedsACompiledPolicy: a configuration whose policy was never
// compiled (its extension filters would enforce nothing) cannot become a
// Server, and a policy that does not compile stops at Prepare.
func TestServerNeedsACompiledPolicy(t *testing.T) {
	cfg := config.DefaultMilter()
	cfg.Lists = []config.ListPattern{{Match: "*@lists.example.org"}}
	cfg.Policy.Filters.Rules = []policy.FilterRule{{Mask: "*.exe", Action: "block"}}
	if srv, err := New(&cfg, &fakeScanner{}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil || srv != nil {
		t.Fatalf("New built a server from an uncompiled policy (err %v)", err)
	}
	cfg.Policy.Filters.Rules[0].Action = "maybe"
	if err := cfg.Prepare(); err == nil || !strings.Contains(err.Error(), "policy.extension_filters.rules[0].action") {
		t.Fatalf("Prepare = %v, want the filter's problem", err)
	}
	cfg.Policy.Filters.Rules[0].Action = "block"
	if err := cfg.Prepare(); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&cfg, &fakeScanner{}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err != nil {
		t.Fatalf("New refused a compiled policy: %v", err)
	}
}

// summedBody claims a SHA-256, as a held body that hashed itself does.
type summedBody struct {
	*strings.Reader
	sum [32]byte
}

func (s summedBody) SHA256() ([32]byte, bool) { return s.sum, true }

// TestLocalScannerTakesTheDigest: the in-process scanner's verdict cache
// is keyed by the SHA-256 the held body took as it arrived, not by a
// second read of it: a body claiming the digest of a message scanned
// before gets that message's verdict from the cache.
func TestLocalScannerTakesTheDigest(t *testing.T) {
	ls := LocalScanner{scanner.New(scanner.Options{Name: "test", CacheEntries: 10}, cleanEngine{})}
	if !hashesBodies(ls) || hashesBodies(LocalScanner{scanner.New(scanner.Options{Name: "test"}, cleanEngine{})}) {
		t.Error("hashesBodies: want true with a cache, false without")
	}
	first := "Subject: one\r\n\r\nfirst\r\n"
	if v, err := ls.Scan(context.Background(), jobproto.Meta{}, strings.NewReader(first), int64(len(first))); err != nil || v.Cached {
		t.Fatalf("first: %+v, %v", v, err)
	}
	other := "Subject: two\r\n\r\nanother message\r\n"
	body := summedBody{strings.NewReader(other), sha256.Sum256([]byte(first))}
	if v, err := ls.Scan(context.Background(), jobproto.Meta{}, body, int64(len(other))); err != nil || !v.Cached {
		t.Errorf("a body claiming the first's digest: cached %v, %v; want the cached verdict", v != nil && v.Cached, err)
	}
}

// cleanEngine finds nothing and knows its version, so verdicts cache.
type cleanEngine struct{}

func (cleanEngine) Name() string { return "clean" }
func (cleanEngine) Scan(ctx context.Context, r io.Reader) (scanner.Detection, error) {
	_, err := io.Copy(io.Discard, r)
	return scanner.Detection{}, err
}
func (cleanEngine) Version(context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "clean", Version: "1", SignatureVersion: "1"}, nil
}
