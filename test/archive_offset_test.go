package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestPrefixedArchives: an archive with data in front of it (one junk
// byte, a self-extractor's stub) is what unzip opens, so the station opens
// it too: through real Postfix, avmilter, avstation and clamd, an
// encrypted one is an encrypted finding, its members meet the extension
// filters, a password in the text opens it, and nothing reaches the list.
// Before archives were located past offset 0, all three were delivered.
func TestPrefixedArchives(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "prefix-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	url := "http://" + station.Addr
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	milterWith := func(t *testing.T, policy string) *chain {
		return newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret, Policy: policy}))
	}

	t.Run("a password-protected zip with one byte prepended is rejected as encrypted", func(t *testing.T) {
		c := milterWith(t, "  actions: {encrypted: {action: reject}}\n")
		att := harness.Attachment{Name: "secret.zip", ContentType: "application/zip", Data: append([]byte{0}, passwordZip(t)...)}
		wantCode(t, c.send(t, listRcp, "prefixed encrypted zip", att), 550, "encrypted content", "'secret.zip")
		c.milter.WaitLog(t, 5*time.Second, "outcome=encrypted", "action=reject")
		c.waitNotDelivered(t, "prefixed encrypted zip")
	})

	t.Run("an exe in a self-extracting zip meets the in-archive extension filter", func(t *testing.T) {
		block := "  extension_filters:\n    apply_in_archives: true\n    rules:\n      - {mask: \"*.exe\", action: block}\n"
		c := milterWith(t, block)
		sfx := append([]byte("MZ\x90\x00"+strings.Repeat("stub code ", 3000)), zipOf(t, "setup.exe", []byte("MZ harmless"))...)
		att := harness.Attachment{Name: "tools.zip", ContentType: "application/zip", Data: sfx}
		wantCode(t, c.send(t, listRcp, "prefixed exe in zip", att), 550, "'tools.zip/setup.exe' are not accepted")
		c.milter.WaitLog(t, 5*time.Second, "outcome=banned-name", "action=reject")
		c.waitNotDelivered(t, "prefixed exe in zip")
	})

	t.Run("a prefixed encrypted zip is opened with the password in the text and its virus found", func(t *testing.T) {
		c := milterWith(t, "")
		att := harness.Attachment{Name: "invoice.zip", ContentType: "application/zip",
			Data: append([]byte("\r\n"), encryptedZipOf(t, "invoice.com", harness.EICAR(), "Invoice2024")...)}
		msg := harness.BuildMessage(sender, listRcp, "prefixed zip with password", "Hello,\r\nthe password is Invoice2024\r\n", att)
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg), 550, "'Eicar")
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=reject")
		c.waitNotDelivered(t, "prefixed zip with password")
	})
}

// encryptedZipOf is a ZipCrypto zip of one file made by zip(1).
func encryptedZipOf(t *testing.T, name string, data []byte, password string) []byte {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, name), data, 0o600)
	cmd := exec.Command("zip", "-q", "-P", password, "out.zip", name)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v %s (scripts/install-deps.sh installs zip)", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.zip"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
