package test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/avstation/avstation/test/harness"
)

// TestPolicies runs the IceWarp settings through real Postfix, avstation
// and clamd: strip, extension filters inside archives, encrypted archives,
// quarantine and notifications.
func TestPolicies(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "policy-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	url := "http://" + station.Addr
	milterWith := func(t *testing.T, policy, extra string) *chain {
		return newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret, Policy: policy, Extra: extra}))
	}
	notes := harness.Attachment{Name: "notes.txt", ContentType: "text/plain", Data: []byte("agenda: 1. budget 2. party\n")}
	// Large enough that the stripped body goes back to Postfix in several
	// 64 KB packets.
	pdf := harness.Attachment{Name: "report.pdf", ContentType: "application/pdf",
		Data: []byte("%PDF-1.4\n" + strings.Repeat("% not really a report, just long enough\n", 8000) + "%%EOF\n")}

	t.Run("strip replaces the infected attachment and keeps the others byte for byte", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}}\n", "")
		msg := harness.BuildMessage(sender, listRcp, "strip me", "Hello list\r\n", notes, eicarAttachment(), pdf)
		r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg)
		wantCode(t, r, 250)
		d := c.delivered(t, "strip me")
		if got := header(d, "X-Virus-Removed"); len(got) != 1 || !strings.HasPrefix(got[0], "eicar.com (Eicar") {
			t.Errorf("X-Virus-Removed = %q", got)
		}
		if got := header(d, "X-Virus-Status"); len(got) != 1 || !strings.HasPrefix(got[0], "Cleaned (Infected (Eicar") {
			t.Errorf("X-Virus-Status = %q", got)
		}
		sentParts, gotParts := rawParts(t, msg), rawParts(t, d.Data)
		if len(sentParts) != 4 || len(gotParts) != 4 {
			t.Fatalf("parts sent %d, delivered %d", len(sentParts), len(gotParts))
		}
		for _, i := range []int{0, 1, 3} { // text, notes.txt, report.pdf
			if !bytes.Equal(sentParts[i], gotParts[i]) {
				t.Errorf("part %d changed:\nsent %q\ngot  %q", i+1, sentParts[i], gotParts[i])
			}
		}
		if bytes.Contains(gotParts[2], []byte("base64")) || !bytes.Contains(gotParts[2], []byte("eicar.com")) {
			t.Errorf("infected part not replaced by a note: %q", gotParts[2])
		}
		decoded := decodedParts(t, d.Data)
		if string(decoded[1]) != "agenda: 1. budget 2. party\n" || !bytes.Equal(decoded[3], pdf.Data) {
			t.Errorf("decoded clean attachments differ: %q", decoded)
		}
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=accept", "stripped=")
	})

	t.Run("strip of a message that is only the virus rejects", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}}\n", "")
		msg := []byte("From: <" + sender + ">\r\nTo: <" + listRcp + ">\r\nSubject: only virus\r\n\r\n" + string(harness.EICAR()) + "\r\n")
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg), 550, "'Eicar")
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=reject")
	})

	t.Run("an exe in a zip is blocked, unless an allow rule above says otherwise", func(t *testing.T) {
		tools := harness.Attachment{Name: "tools.zip", ContentType: "application/zip", Data: zipOf(t, "setup.exe", []byte("MZ harmless"))}
		block := "  extension_filters:\n    apply_in_archives: true\n    rules:\n      - {mask: \"*.exe\", action: block}\n"
		c := milterWith(t, block, "")
		wantCode(t, c.send(t, listRcp, "exe in zip", tools), 550, "'tools.zip/setup.exe' are not accepted")
		c.milter.WaitLog(t, 5*time.Second, "outcome=banned-name", "action=reject")

		allow := "  extension_filters:\n    apply_in_archives: true\n    rules:\n      - {mask: setup.exe, archived_in: \"*.zip\", action: allow}\n      - {mask: \"*.exe\", action: block}\n"
		c = milterWith(t, allow, "")
		wantCode(t, c.send(t, listRcp, "exe in zip allowed", tools), 250)
		c.delivered(t, "exe in zip allowed")
	})

	t.Run("the bypass file lets a trusted sender through, and SIGHUP reloads it", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "bypass")
		os.WriteFile(file, []byte("# nobody yet\n*@trusted.example\n"), 0o600)
		// Sender entries count for outgoing mail only (see TestOutgoingTrust).
		c := milterWith(t, "  trusted_networks: [127.0.0.1/32]\n", "bypass_file: "+file+"\n")
		wantCode(t, c.send(t, listRcp, "before reload", eicarAttachment()), 550)
		os.WriteFile(file, []byte("*@trusted.example\n"+sender+"   # the list's own robot\n"), 0o600)
		if err := c.milter.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		c.milter.WaitLog(t, 5*time.Second, "bypass file reloaded", "entries=2")
		wantCode(t, c.send(t, listRcp, "after reload", eicarAttachment()), 250)
		c.milter.WaitLog(t, 5*time.Second, "message not scanned", "reason=bypass-file", "(line 2)")
		// A file with a bad line is refused whole; the old list stays.
		os.WriteFile(file, []byte("not an entry at all\n"), 0o600)
		c.milter.Signal(syscall.SIGHUP)
		c.milter.WaitLog(t, 5*time.Second, "bypass file not reloaded", "line 1")
		wantCode(t, c.send(t, listRcp, "after a bad reload", eicarAttachment()), 250)
	})

	t.Run("a password-protected zip is tagged by default and rejected when switched on", func(t *testing.T) {
		secretZip := harness.Attachment{Name: "secret.zip", ContentType: "application/zip", Data: passwordZip(t)}
		c := milterWith(t, "", "")
		wantCode(t, c.send(t, listRcp, "encrypted zip tagged", secretZip), 250)
		if got := header(c.delivered(t, "encrypted zip tagged"), "X-Virus-Status"); len(got) != 1 || got[0] != "Encrypted" {
			t.Errorf("X-Virus-Status = %q, want Encrypted", got)
		}
		c = milterWith(t, "  actions: {encrypted: {action: reject}}\n", "")
		wantCode(t, c.send(t, listRcp, "encrypted zip rejected", secretZip), 550, "encrypted content", "'secret.zip")
	})

	t.Run("quarantine keeps the message and its record; the admin is told; the sender is not", func(t *testing.T) {
		qdir := filepath.Join(t.TempDir(), "quarantine")
		c := milterWith(t, "  actions: {infected: {action: reject, quarantine: true, notify: [admin]}}\n",
			"quarantine:\n  dir: "+qdir+"\n  smtp: "+sink.Addr+"\nnotify:\n  from: av@example.org\n  admin: [av-admin@example.org]\n")
		wantCode(t, c.send(t, listRcp, "quarantined posting", eicarAttachment()), 550)
		line := c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "quarantine=", "notified=[admin]")
		id := field(line, "quarantine")
		rec, err := os.ReadFile(filepath.Join(qdir, id+".json"))
		if err != nil {
			t.Fatalf("quarantine record %s: %v", id, err)
		}
		var r struct {
			Sender  string   `json:"sender"`
			Outcome string   `json:"outcome"`
			JobID   string   `json:"job_id"`
			Lists   []string `json:"lists"`
		}
		if err := json.Unmarshal(rec, &r); err != nil || r.Outcome != "infected" || r.Sender != sender ||
			r.JobID != field(line, "job_id") || len(r.Lists) != 1 || r.Lists[0] != "dev" {
			t.Errorf("record %+v (%v): %s", r, err, rec)
		}
		kept, err := os.ReadFile(filepath.Join(qdir, id+".eml"))
		if err != nil || !bytes.Contains(kept, []byte("Subject: quarantined posting")) {
			t.Errorf("quarantined message: %v %.200q", err, kept)
		}
		for _, name := range []string{id + ".json", id + ".eml"} {
			if fi, err := os.Stat(filepath.Join(qdir, name)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v, want 0600", name, fi.Mode())
			}
		}
		note := sink.WaitFor(t, func(d harness.Delivered) bool {
			return len(d.To) == 1 && d.To[0] == "av-admin@example.org" && bytes.Contains(d.Data, []byte("Eicar"))
		}, 10*time.Second)
		if note.From != "" || !bytes.Contains(note.Data, []byte("X-Avstation-Notice: notification")) {
			t.Errorf("notification from %q:\n%s", note.From, note.Data)
		}
		toSender := func(d harness.Delivered) bool { return len(d.To) == 1 && d.To[0] == sender && d.From == "" }
		if n := sink.Count(toSender); n != 0 {
			t.Errorf("the sender was notified %d times; sender notification is off by default", n)
		}
		// Switched on, it is sent (so the check above can fail).
		c = milterWith(t, "  actions: {infected: {action: reject, notify: [sender]}}\n",
			"quarantine:\n  smtp: "+sink.Addr+"\nnotify:\n  from: av@example.org\n")
		wantCode(t, c.send(t, listRcp, "sender told", eicarAttachment()), 550)
		sink.WaitFor(t, toSender, 10*time.Second)
	})
}

// rawParts splits a multipart message into the raw bytes of each of its
// top-level parts, between the boundary lines.
func rawParts(t *testing.T, msg []byte) [][]byte {
	t.Helper()
	m, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := m.Header.ContentType()
	sep := []byte("\r\n--" + params["boundary"])
	_, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	chunks := bytes.Split(append([]byte("\r\n"), body...), sep)
	var parts [][]byte
	for _, c := range chunks[1:] {
		if bytes.HasPrefix(c, []byte("--")) {
			break
		}
		parts = append(parts, c)
	}
	// The text part is the first; BuildMessage puts the body there.
	return parts
}

func decodedParts(t *testing.T, msg []byte) [][]byte {
	t.Helper()
	m, err := message.Read(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	mr := m.MultipartReader()
	var out [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		out = append(out, b)
	}
}

// passwordZip is a ZipCrypto zip made by Debian's zip(1).
func passwordZip(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "plan.txt"), []byte("the secret plan\n"), 0o600)
	cmd := exec.Command(harness.Program(t, "zip"), "-q", "-P", "s3cret", "out.zip", "plan.txt")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.zip"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
