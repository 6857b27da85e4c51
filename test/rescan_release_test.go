package test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avstation/avstation/test/harness"
)

// TestRescanReleasesOnlyWhatThePolicyAccepts: a message quarantined for a
// banned file name is clean to the engines; rescan --release-clean must
// ask the whole policy and keep it. Before, it was released and
// delivered.
func TestRescanReleasesOnlyWhatThePolicyAccepts(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "rescan-secret")
	qdir := filepath.Join(t.TempDir(), "quarantine")
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Clamd: clamd.Addr,
		Extra: "secret_file: " + secret + "\nquarantine:\n  dir: " + qdir + "\n",
		Policy: "  actions: {banned-name: {action: reject, quarantine: true}}\n" +
			"  extension_filters:\n    rules: [{mask: \"*.exe\", action: block}]\n"})
	c := newChain(t, sink, m)
	setup := harness.Attachment{Name: "setup.exe", ContentType: "application/octet-stream", Data: []byte("MZ banned, not a virus")}
	wantCode(t, c.send(t, listRcp, "banned and quarantined", setup), 550, "'setup.exe' are not accepted")

	cmd := exec.Command(bin.Milter, "quarantine", "rescan", "--all", "--release-clean", "--smtp", c.postfix.SMTPAddr, "-config", m.ConfigFile())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run()
	if !strings.Contains(out.String(), "now clean to the engines, but the policy says banned-name (reject setup.exe): not released") {
		t.Errorf("rescan (exit %d) said:\n%s", cmd.ProcessState.ExitCode(), out.String())
	}
	c.waitNotDelivered(t, "banned and quarantined")
}
