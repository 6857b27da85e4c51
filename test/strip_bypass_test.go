package test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/corpus"
	"github.com/avstation/avstation/test/harness"
)

// TestStripLeavesNoVirusAndNoBannedFile: strip is an action that delivers,
// so what it delivers must be clean. Through real Postfix, avstation and
// clamd:
//   - a virus a part boundary cannot cut (uuencoded in the preamble) next to
//     an infected attachment of the same name: the attachment goes, the
//     rewritten body is scanned again, and the message is rejected; before
//     the rescan it was delivered, infected, as "Cleaned";
//   - infected: strip and banned-name: strip together remove both files;
//     before, the banned one was delivered.
func TestStripLeavesNoVirusAndNoBannedFile(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "strip-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	milterWith := func(t *testing.T, policy string) *chain {
		return newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret, Policy: policy}))
	}

	t.Run("a virus in the text is still there after the attachment is stripped", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}}\n")
		// In the preamble, which is no part: strip cannot remove it, and
		// only the raw message's scan sees it (a uuencoded file in a text
		// part is that part's finding, and the part is stripped).
		msg := harness.BuildMessage(sender, listRcp, "uuencoded and attached", "Hello list,\r\n", eicarAttachment())
		msg = bytes.Replace(msg, []byte("This is a multi-part message in MIME format.\r\n"),
			[]byte("The file once more, for those without MIME:\r\n\r\n"+corpus.Uuencode("eicar.com", harness.EICAR())), 1)
		r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg)
		wantCode(t, r, 550, "5.7.1", "'"+harness.EicarSignature)
		line := c.milter.WaitLog(t, 5*time.Second, "message scanned", "outcome=infected", "action=reject")
		if strings.Contains(line, "stripped=") {
			t.Errorf("the log says a part was stripped from a rejected message:\n%s", line)
		}
		c.waitNotDelivered(t, "uuencoded and attached")
	})

	t.Run("a clean rest is rescanned and delivered", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}}\n")
		wantCode(t, c.send(t, listRcp, "strip then rescan", eicarAttachment()), 250)
		d := c.delivered(t, "strip then rescan")
		if bytes.Contains(d.Data, harness.EICAR()) {
			t.Fatalf("EICAR delivered:\n%s", d.Data)
		}
		line := c.milter.WaitLog(t, 5*time.Second, "message scanned", "outcome=infected", "stripped=", "rescan_job_id=")
		station.WaitLog(t, 5*time.Second, "job scanned", "job_id="+field(line, "rescan_job_id"), "status=clean")
	})

	t.Run("infected and banned, both stripped", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}, banned-name: {action: strip}}\n"+
			"  extension_filters:\n    rules: [{mask: \"*.exe\", action: block}]\n")
		setup := harness.Attachment{Name: "setup.exe", ContentType: "application/octet-stream", Data: []byte("MZ not a virus, but banned")}
		notes := harness.Attachment{Name: "notes.txt", ContentType: "text/plain", Data: []byte("agenda\n")}
		wantCode(t, c.send(t, listRcp, "virus and banned", notes, eicarAttachment(), setup), 250)
		d := c.delivered(t, "virus and banned")
		if bytes.Contains(d.Data, []byte("MZ not a virus")) || bytes.Contains(d.Data, []byte("TVogbm90IGEgdmlydXM")) {
			t.Errorf("the banned file was delivered:\n%s", d.Data)
		}
		if bytes.Contains(d.Data, harness.EICAR()) {
			t.Errorf("EICAR delivered:\n%s", d.Data)
		}
		if got := header(d, "X-Virus-Removed"); len(got) != 2 {
			t.Errorf("X-Virus-Removed = %q, want both files", got)
		}
		if !bytes.Contains(d.Data, []byte("YWdlbmRhCg==")) { // agenda\n, base64
			t.Errorf("the clean attachment is gone:\n%s", d.Data)
		}
	})
}
