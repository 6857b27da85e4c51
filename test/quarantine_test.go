package test

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/quarantine"
	"github.com/avstation/avstation/test/harness"
)

// TestQuarantineLifecycle quarantines postings through real Postfix and
// clamd, lists and shows them, releases one (it arrives exactly once and
// a replay of its release is scanned again), refuses a forged release, and
// takes the LISTSERV false-positive path: a signature removed from clamd's
// database, rescan --release-clean, and the posting is delivered.
func TestQuarantineLifecycle(t *testing.T) {
	// clamd with one more signature, for a harmless marker string: the
	// "false positive" that a later database no longer has.
	marker := "AVSTATION-" + "FALSE-POSITIVE-MARKER"
	ndb := filepath.Join(t.TempDir(), "fp.ndb")
	os.WriteFile(ndb, []byte("Test.FalsePositive:0:*:"+hex.EncodeToString([]byte(marker))+"\n"), 0o644)
	withFP := harness.StartClamdWith(t, ndb)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "quarantine-secret")
	qdir := filepath.Join(t.TempDir(), "quarantine")
	extra := "secret_file: " + secret + "\nquarantine:\n  dir: " + qdir + "\n"
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Clamd: withFP.Addr, Extra: extra,
		Policy: "  actions: {infected: {action: reject, quarantine: true}}\n"})
	c := newChain(t, sink, m)

	wantCode(t, c.send(t, listRcp, "quarantined eicar", eicarAttachment()), 550)
	wantCode(t, c.send(t, listRcp, "quarantined false positive", harness.Attachment{Name: "minutes.txt", ContentType: "text/plain", Data: []byte("notes " + marker + "\n")}), 550)

	avmilter := func(args ...string) (string, int) {
		cmd := exec.Command(bin.Milter, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Run()
		return out.String(), cmd.ProcessState.ExitCode()
	}
	out, code := avmilter("quarantine", "list", "-config", m.ConfigFile())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(out, "Eicar-Test-Signature") || !strings.Contains(out, "Test.FalsePositive") {
		t.Fatalf("quarantine list (exit %d):\n%s", code, out)
	}
	var eicarID, fpID string
	for _, l := range lines {
		if strings.Contains(l, "Eicar") {
			eicarID = strings.Fields(l)[0]
		} else {
			fpID = strings.Fields(l)[0]
		}
	}
	if out, code = avmilter("quarantine", "show", eicarID, "-config", m.ConfigFile()); code != 0 || !strings.Contains(out, "Subject: quarantined eicar") {
		t.Errorf("quarantine show (exit %d):\n%s", code, out)
	}

	// Release: through Postfix and the milter, which lets it through once.
	if out, code = avmilter("quarantine", "release", eicarID, "--smtp", c.postfix.SMTPAddr, "-config", m.ConfigFile()); code != 0 {
		t.Fatalf("release (exit %d):\n%s", code, out)
	}
	d := c.delivered(t, "quarantined eicar")
	if len(header(d, quarantine.ReleaseHeader)) != 0 {
		t.Errorf("the release header was delivered")
	}
	m.WaitLog(t, 5*time.Second, "released from quarantine", "quarantine_id="+eicarID)
	if out, code = avmilter("quarantine", "release", eicarID, "--smtp", c.postfix.SMTPAddr, "-config", m.ConfigFile()); code == 0 {
		t.Errorf("a second release was made:\n%s", out)
	}

	// The same release header again, and a forged one: both are scanned.
	_, raw, err := quarantine.Dir{Path: qdir}.Get(eicarID)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := readAll(raw)
	sum, _ := quarantine.BodySum(bytes.NewReader(msg))
	keys, _ := jobproto.LoadSecretFile(secret)
	replay := quarantine.ReleaseToken(keys.Signer(), eicarID, sum, time.Now())
	forged := quarantine.ReleaseToken(jobproto.Key{ID: "default", Secret: []byte("guessed")}, eicarID, sum, time.Now())
	for _, token := range []string{replay, forged} {
		r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, append([]byte(quarantine.ReleaseHeader+": "+token+"\r\n"), msg...))
		wantCode(t, r, 550, "'Eicar")
	}
	m.WaitLog(t, 5*time.Second, "release header refused", "already released once")
	m.WaitLog(t, 5*time.Second, "release header refused", "signature does not match")
	if n := sink.Count(withSubject("quarantined eicar")); n != 1 {
		t.Errorf("the released message arrived %d times, want exactly 1", n)
	}

	// A newer database without the false positive: rescan and release.
	newer := harness.StartClamd(t)
	rescanCfg := filepath.Join(t.TempDir(), "rescan.yaml")
	conf, _ := os.ReadFile(m.ConfigFile())
	os.WriteFile(rescanCfg, bytes.Replace(conf, []byte(withFP.Addr), []byte(newer.Addr), 1), 0o600)
	out, code = avmilter("quarantine", "rescan", "--all", "--release-clean", "--smtp", c.postfix.SMTPAddr, "-config", rescanCfg)
	if code != 0 || !strings.Contains(out, fpID+": was infected (Test.FalsePositive") || !strings.Contains(out, "now clean") {
		t.Errorf("rescan (exit %d):\n%s", code, out)
	}
	// The milter still has the old database: only the release header gets
	// the posting through.
	c.delivered(t, "quarantined false positive")
}

func readAll(r interface {
	Read([]byte) (int, error)
	Close() error
}) ([]byte, error) {
	defer r.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return b.Bytes(), err
}
