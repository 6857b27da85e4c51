package milter

import (
	"context"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/bypass"
	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/notice"
)

func TestDryRunAcceptsAndSaysWhatItWouldDo(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict()}
	addr, logs, _, _ := startMilter(t, func(c *config.Milter) { c.Policy.DryRun = true }, fs)
	r := transact(t, addr, []string{"dev@lists.example.org"}, subject, "body\r\n")
	if r.act == nil || r.act.Type != milter.ActionAccept {
		t.Fatalf("dry run answered %v, want Accept", r.act)
	}
	if !strings.Contains(logs.String(), "outcome=infected action=accept") || !strings.Contains(logs.String(), "dry_run=true would=reject") {
		t.Errorf("log:\n%s", logs)
	}
}

func TestOversizeIsNotScannedButTagged(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict()}
	addr, logs, _, _ := startMilter(t, func(c *config.Milter) { c.Policy.MaxScanSize = 100 }, fs)
	r := transact(t, addr, []string{"dev@lists.example.org"}, subject, strings.Repeat("x", 200)+"\r\n")
	wantAccept(t, r)
	wantHeader(t, r, "X-Virus-Status", "Unscanned (too large)")
	if fs.calls != 0 {
		t.Errorf("an oversize message was scanned")
	}
	if !strings.Contains(logs.String(), "outcome=oversize") {
		t.Errorf("log:\n%s", logs)
	}
}

// TestNotScannedByConfiguration: transact's client is 192.0.2.1, not
// authenticated, with MAIL FROM:<sender@example.com>. The envelope alone
// earns no bypass; the client's network or the admin's explicit choice
// does.
func TestNotScannedByConfiguration(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bypass")
	os.WriteFile(file, []byte("# trusted\nsender@example.com\n"), 0o600)
	bp, err := bypass.NewHolder(file)
	if err != nil {
		t.Fatal(err)
	}
	trusted := func(c *config.Milter) { c.Policy.TrustedNetworks = []string{"192.0.2.0/24"} }
	outgoingOff := func(c *config.Milter) {
		c.Policy.ApplyToOutgoing = false
		c.Policy.LocalDomains = []string{"example.com"}
	}
	tests := []struct {
		name   string
		mutate func(*config.Milter)
		bp     *bypass.Holder
		reason string // "": scanned
	}{
		{"bypass sender entry, untrusted client", nil, bp, ""},
		{"bypass sender entry, trusted network", trusted, bp, "reason=bypass-file entry=\"sender@example.com (line 2)\""},
		{"bypass sender entry, bypass_trusts_envelope", func(c *config.Milter) { c.BypassTrustsEnvelope = true }, bp, "reason=bypass-file"},
		{"bypass sender entry, another trusted network", func(c *config.Milter) { c.Policy.TrustedNetworks = []string{"198.51.100.0/24", "127.0.0.1"} }, bp, ""},
		{"outgoing off, local MAIL FROM, untrusted client", outgoingOff, nil, ""},
		{"outgoing off, trusted network", func(c *config.Milter) { outgoingOff(c); trusted(c) }, nil, "reason=outgoing entry=\"trusted network\""},
		{"outgoing off, trusted network, any MAIL FROM", func(c *config.Milter) {
			c.Policy.ApplyToOutgoing = false
			trusted(c)
		}, nil, "reason=outgoing"},
		{"outgoing on, trusted network", trusted, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fakeScanner{v: infectedVerdict()}
			addr, logs, _, _ := startMilterWith(t, tt.mutate, fs, tt.bp)
			r := transact(t, addr, []string{"dev@lists.example.org"}, subject, "body\r\n")
			if tt.reason == "" {
				if r.act == nil || r.act.SMTPCode != 550 || fs.calls != 1 {
					t.Fatalf("got %v after %d scans; want scanned and rejected", r.act, fs.calls)
				}
				return
			}
			if r.dataAct.Type != milter.ActionAccept || fs.calls != 0 {
				t.Fatalf("DATA answered %v, %d scans; want Accept and none", r.dataAct, fs.calls)
			}
			if !strings.Contains(logs.String(), `msg="message not scanned" `+tt.reason) {
				t.Errorf("log:\n%s", logs)
			}
		})
	}
}

func TestOwnNoticesAreNotScanned(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict()}
	addr, _, _, _ := startMilter(t, nil, fs)
	// transact connects as 192.0.2.1: a notice header from elsewhere is
	// just a header, and the message is scanned.
	r := transact(t, addr, []string{"dev@lists.example.org"}, append(subject, [2]string{"X-Avstation-Notice", " notification"}), "body\r\n")
	if r.act == nil || r.act.SMTPCode != 550 || fs.calls != 1 {
		t.Errorf("a forged notice from a remote client got %v after %d scans", r.act, fs.calls)
	}
}

// sendNotice drives one message from client with the null sender, as our
// own notices arrive, with the given mark and Message-ID.
func sendNotice(t *testing.T, addr, client, mark, id, body string) (*milter.Action, []milter.ModifyAction) {
	t.Helper()
	s := envelope(t, addr, client, "", milter.WithReadTimeout(10*time.Second))
	s.HeaderField("Subject", " notice", nil)
	s.HeaderField("Message-ID", " "+id, nil)
	s.HeaderField("X-Avstation-Notice", " "+mark, nil)
	s.HeaderEnd()
	defer s.Close() // before the caller's deferred Shutdown, which waits for sessions
	mods, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return act, mods
}

// TestNoticeMarks: a notice passes unscanned only with a mark this
// process signed over its own Message-ID, recipients and body, from this
// host, once; the mark is removed.
func TestNoticeMarks(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict()}
	cfg := config.DefaultMilter()
	cfg.Lists = []config.ListPattern{{Match: "*@lists.example.org"}}
	cfg.SpoolDir = t.TempDir()
	if err := cfg.Prepare(); err != nil {
		t.Fatal(err)
	}
	srv, err := New(&cfg, fs, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	addr := ln.Addr().String()

	const body = "a notice\r\n"
	var sum notice.BodyHash
	sum.Write([]byte(body))
	rcpts := []string{"dev@lists.example.org"} // as envelope sends RCPT TO
	mark := func(key *notice.Key, id string, rcpts []string, body [32]byte) string {
		return key.Mark("notification", notice.Message{MessageID: id, Recipients: rcpts, Body: body}, time.Now())
	}
	other := notice.NewKey()
	tests := []struct {
		name, client, mark, id, body string
		pass                         bool
	}{
		{"another key", "127.0.0.1", mark(other, "<a@x>", rcpts, sum.Sum()), "<a@x>", body, false},
		{"another Message-ID", "127.0.0.1", mark(srv.notices.Key(), "<b@x>", rcpts, sum.Sum()), "<c@x>", body, false},
		{"other recipients", "127.0.0.1", mark(srv.notices.Key(), "<d@x>", []string{"admin@example.org"}, sum.Sum()), "<d@x>", body, false},
		{"another body", "127.0.0.1", mark(srv.notices.Key(), "<e@x>", rcpts, sum.Sum()), "<e@x>", "EVIL\r\n", false},
		{"a remote client", "192.0.2.1", mark(srv.notices.Key(), "<f@x>", rcpts, sum.Sum()), "<f@x>", body, false},
		{"the old bearer token", "127.0.0.1", "notification 0123456789abcdef0123456789abcdef", "<g@x>", body, false},
		{"genuine", "127.0.0.1", mark(srv.notices.Key(), "<h@x>", rcpts, sum.Sum()), "<h@x>", body, true},
		{"genuine, again", "127.0.0.1", mark(srv.notices.Key(), "<h@x>", rcpts, sum.Sum()), "<h@x>", body, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fs.calls
			act, mods := sendNotice(t, addr, tt.client, tt.mark, tt.id, tt.body)
			if tt.pass && (act.Type != milter.ActionAccept || fs.calls != before) {
				t.Errorf("got %v after %d scans; want accepted unscanned", act, fs.calls-before)
			}
			if !tt.pass && (act.SMTPCode != 550 || fs.calls != before+1) {
				t.Errorf("got %v after %d scans; want scanned and rejected", act, fs.calls-before)
			}
			removed := false
			for _, m := range mods {
				removed = removed || (m.Type == milter.ActionChangeHeader && m.HeaderName == "X-Avstation-Notice" && m.HeaderValue == "")
			}
			if tt.pass && !removed {
				t.Errorf("the notice mark was not removed: %v", mods)
			}
		})
	}
}

// TestWithoutDataCommand: an MTA that sends no DATA (milter protocol
// before 4) still has list mail held and scanned.
func TestWithoutDataCommand(t *testing.T) {
	fs := &fakeScanner{v: infectedVerdict()}
	addr, _, _, _ := startMilter(t, nil, fs)
	s := envelope(t, addr, "192.0.2.1", "sender@example.com",
		milter.WithReadTimeout(10*time.Second), milter.WithMaximumVersion(3), milter.WithProtocols(0))
	s.HeaderField("Subject", "no data", nil) // without the leading-space option, as the MTA sends it
	s.HeaderEnd()
	_, act, err := s.BodyReadFrom(strings.NewReader("EVIL\r\n"))
	if err != nil || act == nil || act.SMTPCode != 550 || fs.calls != 1 {
		t.Errorf("got %v, %v after %d scans; want the message scanned and rejected", act, err, fs.calls)
	}
	if !strings.Contains(string(fs.body), "Subject: no data") || !strings.Contains(string(fs.body), "\r\n\r\nEVIL\r\n") {
		t.Errorf("the scanner saw %q, not the message", fs.body)
	}
}
