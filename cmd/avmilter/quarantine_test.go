package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/quarantine"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// qenv is a config file with a quarantine directory and a secret file.
type qenv struct {
	root   string
	config string
	dir    quarantine.Dir
	keys   *jobproto.KeyRing
}

// newQEnv writes the config; extra is more YAML at the top level.
func newQEnv(t *testing.T, extra string) *qenv {
	t.Helper()
	root := t.TempDir()
	secret := filepath.Join(root, "secret")
	if err := os.WriteFile(secret, []byte("# rotated 2025\nk2 the-new-word\nk1 the-old-word\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := jobproto.LoadSecretFile(secret)
	if err != nil {
		t.Fatal(err)
	}
	e := &qenv{root: root, dir: quarantine.Dir{Path: filepath.Join(root, "quarantine")}, keys: keys}
	e.config = e.writeConfig(t, "quarantine:\n  dir: "+e.dir.Path+"\nsecret_file: "+secret+"\n"+extra)
	return e
}

func (e *qenv) writeConfig(t *testing.T, text string) string {
	t.Helper()
	text = "lists: [{match: \"*@lists.example.org\"}]\nspool_dir: " + filepath.Join(e.root, "spool") + "\n" + text
	p := filepath.Join(e.root, "avmilter-"+strconv.Itoa(len(text))+".yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// put quarantines msg with a record saying it was infected with threat.
func (e *qenv) put(t *testing.T, sender, threat string, age time.Duration, msg string, parts ...string) quarantine.Record {
	t.Helper()
	v := &verdict.Verdict{JobID: "job-1"}
	v.Add(verdict.Finding{Path: "2", FileName: "invoice.zip", Kind: verdict.KindVirus, Threat: threat, Engine: "clamd"})
	rec, err := e.dir.Put(quarantine.Record{
		Time: time.Now().Add(-age).Truncate(time.Second), QueueID: "4ABC123", JobID: "job-1",
		Sender: sender, Recipients: []string{"dev-l@lists.example.org", "ops-l@lists.example.org"},
		Lists: []string{"dev-l", "ops-l"}, Outcome: "infected", Verdict: v, Parts: parts,
	}, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// run runs "avmilter quarantine ARGS -config CONFIG".
func (e *qenv) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = quarantineCmd(append(args, "-config", e.config), &out, &errOut)
	return code, out.String(), errOut.String()
}

func message(subject, body string) string {
	return "From: Alice <alice@example.com>\r\nTo: dev-l@lists.example.org\r\nSubject: " + subject +
		"\r\nMessage-ID: <1@example.com>\r\n\r\n" + body
}

func TestQuarantineList(t *testing.T) {
	e := newQEnv(t, "")
	if code, out, errOut := e.run(t, "list", "--json"); code != 0 || out != "[]\n" {
		t.Fatalf("list --json of nothing: exit %d, %q %q", code, out, errOut)
	}
	a := e.put(t, "alice@example.com", "Win.Trojan.Agent-1", 2*time.Hour, message("a", "hello\r\n"))
	b := e.put(t, "", "", time.Hour, message("b", "hello\r\n"))

	code, out, errOut := e.run(t, "list")
	if code != 0 || errOut != "" {
		t.Fatalf("list: exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("list printed %d lines, want 2:\n%s", len(lines), out)
	}
	for i, want := range []struct {
		rec            quarantine.Record
		threat, sender string
	}{{a, "Win.Trojan.Agent-1", "alice@example.com"}, {b, "???", "<>"}} {
		got := strings.Fields(lines[i])
		exp := []string{want.rec.ID, want.rec.Time.Format(time.RFC3339), "infected", want.threat, want.sender,
			"dev-l,ops-l", strconv.FormatInt(want.rec.Size, 10)}
		if strings.Join(got, " ") != strings.Join(exp, " ") {
			t.Errorf("line %d = %q, want the fields %q", i+1, lines[i], exp)
		}
	}

	code, out, _ = e.run(t, "list", "--json")
	var recs []quarantine.Record
	if err := json.Unmarshal([]byte(out), &recs); code != 0 || err != nil {
		t.Fatalf("list --json: exit %d, %v: %s", code, err, out)
	}
	if len(recs) != 2 || recs[0].ID != a.ID || recs[1].ID != b.ID || recs[0].Recipients[1] != "ops-l@lists.example.org" {
		t.Errorf("list --json = %+v", recs)
	}
}

func TestQuarantineShow(t *testing.T) {
	e := newQEnv(t, "")
	msg := message("quarterly report", "the body stays hidden\r\n")
	rec := e.put(t, "alice@example.com", "Win.Trojan.Agent-1", 0, msg)

	code, out, errOut := e.run(t, "show", rec.ID)
	if code != 0 {
		t.Fatalf("show: exit %d, %s", code, errOut)
	}
	js, hdr, ok := strings.Cut(out, "}\n\n")
	var got quarantine.Record
	if !ok || json.Unmarshal([]byte(js+"}"), &got) != nil || got.ID != rec.ID || got.Verdict.Findings[0].Threat != "Win.Trojan.Agent-1" {
		t.Fatalf("show printed no record:\n%s", out)
	}
	wantHdr := "From: Alice <alice@example.com>\nTo: dev-l@lists.example.org\nSubject: quarterly report\nMessage-ID: <1@example.com>\n"
	if hdr != wantHdr {
		t.Errorf("show header:\n%q\nwant\n%q", hdr, wantHdr)
	}

	if code, out, _ := e.run(t, "show", rec.ID, "--raw"); code != 0 || out != msg {
		t.Errorf("show --raw: exit %d, %q", code, out)
	}

	code, _, errOut = e.run(t, "show", "zzzzzzzzzzzzzzzzzzzz")
	if want := "no quarantined message zzzzzzzzzzzzzzzzzzzz in " + e.dir.Path; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("show of an unknown ID: exit %d, %q; want 1, %q", code, errOut, want)
	}
	code, _, errOut = e.run(t, "show", "../../etc/passwd")
	if code != 2 || !strings.Contains(errOut, `invalid ID "../../etc/passwd"`) {
		t.Errorf("show of a path: exit %d, %q", code, errOut)
	}
}

func TestQuarantineDeletePurge(t *testing.T) {
	e := newQEnv(t, "")
	old := e.put(t, "alice@example.com", "X", 40*24*time.Hour, message("old", "x\r\n"))
	mid := e.put(t, "alice@example.com", "X", 10*24*time.Hour, message("mid", "x\r\n"))
	recent := e.put(t, "alice@example.com", "X", time.Hour, message("new", "x\r\n"))

	tests := []struct {
		args []string
		code int
		out  string // in stdout (exit 0) or stderr
	}{
		{[]string{"purge", "--older-than", "1x"}, 2, `bad duration "1x"`},
		{[]string{"purge", "--older-than", "-30d"}, 2, "bad duration"},
		{[]string{"purge", "--older-than", "0s"}, 2, "more than zero"},
		{[]string{"purge"}, 2, "purge needs --older-than"},
		{[]string{"purge", "--older-than", "30d"}, 0, "purged 1 messages older than 30d from " + e.dir.Path},
		{[]string{"purge", "--older-than", "216h"}, 0, "purged 1 messages older than 216h"},
		{[]string{"delete", recent.ID}, 0, "deleted " + recent.ID},
		{[]string{"delete", recent.ID}, 1, "no quarantined message " + recent.ID + " in " + e.dir.Path},
		{[]string{"delete", "Not-An-ID"}, 2, `invalid ID "Not-An-ID"`},
		{[]string{"delete"}, 2, "delete takes one or more IDs"},
	}
	for _, tt := range tests {
		code, out, errOut := e.run(t, tt.args...)
		if tt.code != 0 {
			out = errOut
		}
		if code != tt.code || !strings.Contains(out, tt.out) {
			t.Errorf("%q: exit %d, %q; want %d, %q", tt.args, code, out, tt.code, tt.out)
		}
	}
	for _, rec := range []quarantine.Record{old, mid, recent} {
		if _, _, err := e.dir.Get(rec.ID); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there: %v", rec.ID, err)
		}
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"720h": 720 * time.Hour, "30d": 30 * 24 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute,
	} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "30", "x30d", "+3d", "3dd", "-1h", "0d", "1d-48h"} {
		if got, err := parseAge(in); err == nil {
			t.Errorf("parseAge(%q) = %v, want an error", in, got)
		}
	}
}

// verifyDelivery checks what a release delivered: the original envelope,
// and the original message after a release header the milter accepts.
func verifyDelivery(t *testing.T, e *qenv, got harness.Delivered, rec quarantine.Record, msg string) {
	t.Helper()
	if got.From != rec.Sender || strings.Join(got.To, " ") != strings.Join(rec.Recipients, " ") {
		t.Errorf("envelope MAIL FROM:<%s> RCPT TO:%q, want <%s> %q", got.From, got.To, rec.Sender, rec.Recipients)
	}
	line, rest, _ := strings.Cut(string(got.Data), "\r\n")
	value, ok := strings.CutPrefix(line, quarantine.ReleaseHeader+": ")
	if !ok || rest != msg {
		t.Fatalf("delivered:\n%q\nwant %s: ... and then\n%q", got.Data, quarantine.ReleaseHeader, msg)
	}
	if strings.Contains(value, "the-new-word") {
		t.Errorf("release header %q holds the secret", value)
	}
	sum, err := quarantine.BodySum(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	id, err := quarantine.VerifyRelease(value, e.keys, sum, time.Now(), quarantine.DefaultReleaseMaxAge)
	if err != nil || id != rec.ID {
		t.Errorf("VerifyRelease(%q) = %q, %v; want %s", value, id, err, rec.ID)
	}
	if !strings.HasPrefix(value, "v1 "+rec.ID+" ") || !strings.Contains(value, " k2 ") {
		t.Errorf("release header %q: want the id and the signing key k2", value)
	}
}

func TestQuarantineRelease(t *testing.T) {
	sink := harness.StartSink(t)
	e := newQEnv(t, "")
	msg := message("slides", "see the attachment\r\n.leading dot\r\n")
	rec := e.put(t, "alice@example.com", "Heuristics.Broken.Executable", time.Hour, msg)
	bounce := e.put(t, "", "Heuristics.Broken.Executable", time.Hour, message("bounce", "x\r\n"))
	parts := e.put(t, "alice@example.com", "Win.Trojan.Agent-1", time.Hour, message("parts", "x\r\n"), "2")

	code, out, errOut := e.run(t, "release", rec.ID, "--smtp", sink.Addr)
	if want := "released " + rec.ID + " to 2 recipients via " + sink.Addr + "\n"; code != 0 || out != want {
		t.Fatalf("release: exit %d, %q %q; want %q", code, out, errOut, want)
	}
	got := sink.WaitFor(t, nil, 10*time.Second)
	verifyDelivery(t, e, got, rec, msg)

	// The milter lets it through once; a second release is refused.
	sum, _ := quarantine.BodySum(bytes.NewReader(got.Data))
	value, _, _ := strings.Cut(strings.TrimPrefix(string(got.Data), quarantine.ReleaseHeader+": "), "\r\n")
	if _, err := e.dir.AcceptRelease(value, e.keys, sum, time.Now(), quarantine.DefaultReleaseMaxAge); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dir.AcceptRelease(value, e.keys, sum, time.Now(), quarantine.DefaultReleaseMaxAge); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second AcceptRelease: %v, want fs.ErrExist", err)
	}
	code, _, errOut = e.run(t, "release", rec.ID, "--smtp", sink.Addr)
	if code != 1 || !strings.Contains(errOut, rec.ID+" was released before") {
		t.Errorf("second release: exit %d, %q", code, errOut)
	}

	// The null sender stays <>, from quarantine.smtp in the config.
	e.config = e.writeConfig(t, "quarantine:\n  dir: "+e.dir.Path+"\n  smtp: "+sink.Addr+"\nsecret_file: "+filepath.Join(e.root, "secret")+"\n")
	sink.Reset()
	if code, out, errOut := e.run(t, "release", bounce.ID); code != 0 || !strings.Contains(out, "via "+sink.Addr) {
		t.Fatalf("release of a bounce: exit %d, %q %q", code, out, errOut)
	}
	verifyDelivery(t, e, sink.WaitFor(t, nil, 10*time.Second), bounce, message("bounce", "x\r\n"))

	sink.Reset()
	tests := []struct {
		name   string
		config string
		args   []string
		code   int
		err    string
	}{
		{"attachments only", e.config, []string{"release", parts.ID}, 1, parts.ID + " holds only the attachments; it cannot be released"},
		{"unknown", e.config, []string{"release", "zzzzzzzzzzzzzzzzzzzz"}, 1, "no quarantined message zzzzzzzzzzzzzzzzzzzz in " + e.dir.Path},
		{"no secret file", e.writeConfig(t, "quarantine: {dir: "+e.dir.Path+"}\n"), []string{"release", rec.ID}, 1, "secret_file is not set in"},
		{"no dir", e.writeConfig(t, "quarantine: {address: q@example.org, smtp: \"127.0.0.1:25\"}\n"), []string{"release", rec.ID}, 1,
			"quarantine.dir is not set in "},
		{"bad smtp", e.config, []string{"release", rec.ID, "--smtp", "nowhere"}, 2, `--smtp "nowhere": want HOST:PORT`},
		{"two IDs", e.config, []string{"release", rec.ID, bounce.ID}, 2, "release takes one ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := *e
			e.config = tt.config
			code, out, errOut := e.run(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.err) || out != "" {
				t.Errorf("exit %d, %q %q; want %d, %q", code, out, errOut, tt.code, tt.err)
			}
		})
	}
	if n := sink.Count(nil); n != 0 {
		t.Errorf("%d messages delivered by refused releases", n)
	}
}

func TestQuarantineRescan(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	e := newQEnv(t, "scanner:\n  clamd: [\""+clamd.Addr+"\"]\n")
	// A false positive: the record says infected, by a signature clamd no
	// longer has; the content is clean.
	cleanMsg := message("minutes", "nothing to see here\r\n")
	fp := e.put(t, "alice@example.com", "Win.Trojan.Removed-1", 2*time.Hour, cleanMsg)
	eicar := e.put(t, "mallory@example.com", harness.EicarSignature, time.Hour, message("eicar", string(harness.EICAR())+"\r\n"))

	code, out, errOut := e.run(t, "rescan", fp.ID, eicar.ID)
	if code != 0 {
		t.Fatalf("rescan: exit %d, %q %q", code, out, errOut)
	}
	want := regexp.MustCompile(`^` + fp.ID + `: was infected \(Win\.Trojan\.Removed-1\), now clean\n` +
		eicar.ID + `: still infected \(` + harness.EicarSignature + `(\.UNOFFICIAL)?\)\n$`)
	if !want.MatchString(out) {
		t.Errorf("rescan printed\n%s\nwant %s", out, want)
	}
	if n := sink.Count(nil); n != 0 {
		t.Errorf("rescan without --release-clean delivered %d messages", n)
	}

	code, out, errOut = e.run(t, "rescan", "--all", "--release-clean", "--smtp", sink.Addr)
	if code != 0 || !strings.Contains(out, "released "+fp.ID+" to 2 recipients via "+sink.Addr) || strings.Contains(out, "released "+eicar.ID) {
		t.Fatalf("rescan --all --release-clean: exit %d, %q %q", code, out, errOut)
	}
	verifyDelivery(t, e, sink.WaitFor(t, nil, 10*time.Second), fp, cleanMsg)
	time.Sleep(100 * time.Millisecond) // a second delivery would be there by now
	if n := sink.Count(nil); n != 1 {
		t.Errorf("%d messages delivered, want only the clean one", n)
	}

	for _, tt := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"rescan"}, 2, "rescan takes IDs or --all"},
		{[]string{"rescan", fp.ID, "--all"}, 2, "give IDs or --all, not both"},
		{[]string{"rescan", "UPPER"}, 2, `invalid ID "UPPER"`},
		{[]string{"rescan", "zzzzzzzzzzzzzzzzzzzz"}, 1, "no quarantined message zzzzzzzzzzzzzzzzzzzz in " + e.dir.Path},
	} {
		if code, _, errOut := e.run(t, tt.args...); code != tt.code || !strings.Contains(errOut, tt.err) {
			t.Errorf("%q: exit %d, %q; want %d, %q", tt.args, code, errOut, tt.code, tt.err)
		}
	}
}

func TestQuarantineUsage(t *testing.T) {
	e := newQEnv(t, "")
	rec := e.put(t, "alice@example.com", "X", 0, message("a", "x\r\n"))
	var out, errOut bytes.Buffer
	// -config before the command.
	if code := quarantineCmd([]string{"-config", e.config, "list"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), rec.ID) {
		t.Errorf("-config before list: exit %d, %q %q", code, out.String(), errOut.String())
	}
	for _, tt := range []struct {
		args []string
		code int
		out  string
	}{
		{nil, 2, "no command"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"list", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"list", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"list", "-config", filepath.Join(e.root, "none.yaml")}, 1, "none.yaml"},
	} {
		out.Reset()
		errOut.Reset()
		code := quarantineCmd(tt.args, &out, &errOut)
		if code != tt.code || !strings.Contains(errOut.String(), tt.out) {
			t.Errorf("%q: exit %d, %q; want %d, %q", tt.args, code, errOut.String(), tt.code, tt.out)
		}
	}
	out.Reset()
	if code := quarantineCmd([]string{"help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "release ID") {
		t.Errorf("help: exit %d, %q", code, out.String())
	}
}
