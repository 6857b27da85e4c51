package test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestAdminRecords follows postings the way an admin answers "my posting
// never arrived": the list's activity log, the list activity report, the
// station's record of the job, and eicar-test and version.
func TestAdminRecords(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "admin-secret")
	// A second engine that finds "BAD" and gives no name (no
	// threat_pattern): the activity log must say ???.
	fake, err := filepath.Abs("../scanner/external/testdata/fakescan.sh")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(fake, 0o755)
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret,
		"  external:\n    - {name: fake, path: "+fake+", args: [\"{file}\"], infected_codes: [1], clean_codes: [0]}")
	activityDir := t.TempDir()
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret,
		ActivityDir: activityDir})
	c := newChain(t, sink, m)

	wantCode(t, c.send(t, listRcp, "admin clean"), 250)
	wantCode(t, c.send(t, listRcp, "admin eicar", eicarAttachment()), 550)
	wantCode(t, c.send(t, listRcp, "admin encrypted", harness.Attachment{Name: "secret.zip", ContentType: "application/zip", Data: passwordZip(t)}), 250)
	wantCode(t, c.send(t, listRcp, "admin unnamed", harness.Attachment{Name: "odd.bin", Data: []byte("this is BAD content")}), 550)
	c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "file=odd.bin")

	log, err := os.ReadFile(filepath.Join(activityDir, "dev.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 3 {
		t.Fatalf("activity log has %d lines, want 3 (VIRUS, ENCRYPTED, VIRUS ???):\n%s", len(lines), log)
	}
	today := time.Now().Format("2006/01/02 ")
	if !strings.HasPrefix(lines[0], today) || !strings.Contains(lines[0], " VIRUS Eicar-Test-Signature") || !strings.Contains(lines[0], "file=eicar.com action=reject") {
		t.Errorf("VIRUS line: %q", lines[0])
	}
	if !strings.Contains(lines[1], " ENCRYPTED ") || !strings.Contains(lines[1], "file=secret.zip") {
		t.Errorf("ENCRYPTED line: %q", lines[1])
	}
	if !strings.Contains(lines[2], " VIRUS ??? ") || !strings.Contains(lines[2], "file=odd.bin") {
		t.Errorf("unnamed VIRUS line: %q", lines[2])
	}

	avmilter := func(args ...string) (string, int) {
		cmd := exec.Command(bin.Milter, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.Run()
		return out.String(), cmd.ProcessState.ExitCode()
	}
	out, code := avmilter("report", "-config", m.ConfigFile(), "--list", "dev", "--type", "VIRUS", "--since", time.Now().Format("2006-01-02"))
	if code != 0 || !strings.Contains(out, lines[0]) || !strings.Contains(out, lines[2]) || strings.Contains(out, "ENCRYPTED") || !strings.Contains(out, "2 event(s) for list dev") {
		t.Errorf("report (exit %d):\n%s", code, out)
	}
	out, code = avmilter("report", "-config", m.ConfigFile(), "--list", "dev", "--json")
	var events []struct {
		Type  string `json:"type"`
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal([]byte(out), &events); code != 0 || err != nil || len(events) != 3 || events[0].Type != "VIRUS" || events[0].JobID == "" {
		t.Errorf("report --json (exit %d, %v):\n%s", code, err, out)
	}
	if out, code = avmilter("report", "-config", m.ConfigFile(), "--list", "nosuch"); code == 0 || !strings.Contains(out, `no activity log for this list: "nosuch"`) {
		t.Errorf("unknown list (exit %d): %s", code, out)
	}
	if out, code = avmilter("report", "-config", m.ConfigFile(), "--list", "dev", "--since", "last tuesday"); code != 2 || !strings.Contains(out, "is not a time") {
		t.Errorf("bad time (exit %d): %s", code, out)
	}

	// The VIRUS line's job id finds the station's record.
	jobID := strings.TrimPrefix(strings.Fields(lines[0])[4], "job=")
	show := exec.Command(bin.Station, "show", "-config", station.ConfigFile(), jobID)
	rec, err := show.CombinedOutput()
	if err != nil || !strings.Contains(string(rec), "job "+jobID) || !strings.Contains(string(rec), "virus at 2 (eicar.com): Eicar-Test-Signature") ||
		!strings.Contains(string(rec), `engine said: "stream: Eicar-Test-Signature`) {
		t.Errorf("avstation show %s (%v):\n%s", jobID, err, rec)
	}
	unnamed := strings.TrimPrefix(strings.Fields(lines[2])[4], "job=")
	rec, _ = exec.Command(bin.Station, "show", "-config", station.ConfigFile(), unnamed).CombinedOutput()
	if !strings.Contains(string(rec), "??? (the engine gave no name) [fake]") || !strings.Contains(string(rec), "FOUND: Test.Bad") {
		t.Errorf("record of the unnamed finding:\n%s", rec)
	}

	// eicar-test through the real chain, and through a Postfix with no milter.
	out, code = avmilter("eicar-test", "-config", m.ConfigFile(), "--smtp", c.postfix.SMTPAddr, "--to", listRcp)
	if code != 0 || !strings.Contains(out, "OK: the EICAR test message was refused") {
		t.Errorf("eicar-test (exit %d):\n%s", code, out)
	}
	bare := harness.StartPostfix(t, harness.PostfixOptions{RelayTo: sink.Addr})
	out, code = avmilter("eicar-test", "-config", m.ConfigFile(), "--smtp", bare.SMTPAddr, "--to", listRcp)
	if code == 0 || !strings.Contains(out, "the test message was delivered") {
		t.Errorf("eicar-test without the milter (exit %d):\n%s", code, out)
	}

	out, code = avmilter("version", "-config", m.ConfigFile())
	if code != 0 || !strings.Contains(out, "station http://"+station.Addr+": avstation ") || !strings.Contains(out, "clamd: ClamAV ") || !strings.Contains(out, "Virus database version") {
		t.Errorf("version (exit %d):\n%s", code, out)
	}
	station.Stop()
	if out, code = avmilter("version", "-config", m.ConfigFile()); code == 0 || !strings.Contains(out, "unreachable") {
		t.Errorf("version with the station down (exit %d):\n%s", code, out)
	}
}
