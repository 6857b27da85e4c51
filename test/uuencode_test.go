package test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/corpus"
	"github.com/avstation/avstation/test/harness"
)

// TestEncodedInText: files uuencoded or yEnc-encoded in the text of a
// message are what mail readers save as attachments, so the station
// examines them as attachments with their names. Through real Postfix,
// avmilter, avstation (scanner.mode: attachments, where the text itself
// is not sent to the engines) and clamd. Before the station decoded them,
// each of these messages was Clean and delivered to the list.
func TestEncodedInText(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "uuencode-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret, "  mode: attachments")
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	milterWith := func(t *testing.T, policy string) *chain {
		return newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret, Policy: policy}))
	}
	post := func(t *testing.T, c *chain, subject, text string, atts ...harness.Attachment) harness.SendResult {
		t.Helper()
		msg := harness.BuildMessage(sender, listRcp, subject, text, atts...)
		return harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, msg)
	}

	t.Run("uuencoded EICAR in the text is rejected by name", func(t *testing.T) {
		c := milterWith(t, "")
		text := "Hello list,\r\nthe test file:\r\n\r\n" + corpus.Uuencode("eicar.com", harness.EICAR()) + "\r\nbye\r\n"
		wantCode(t, post(t, c, "uuencoded eicar", text), 550, "5.7.1", "'eicar.com'", "'"+harness.EicarSignature)
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=reject")
		c.waitNotDelivered(t, "uuencoded eicar")
	})

	t.Run("a uuencoded exe meets the extension filter", func(t *testing.T) {
		c := milterWith(t, "  extension_filters:\n    rules: [{mask: \"*.exe\", action: block}]\n")
		text := "Hello list,\r\n" + corpus.Uuencode("setup.exe", []byte("MZ harmless but banned")) + "bye\r\n"
		wantCode(t, post(t, c, "uuencoded exe", text), 550, "'setup.exe' are not accepted")
		c.milter.WaitLog(t, 5*time.Second, "outcome=banned-name", "action=reject")
		c.waitNotDelivered(t, "uuencoded exe")
	})

	t.Run("yEnc EICAR in the text is rejected by name", func(t *testing.T) {
		c := milterWith(t, "")
		text := "Hello list,\r\n" + yencode("eicar.com", harness.EICAR()) + "bye\r\n"
		wantCode(t, post(t, c, "yenc eicar", text), 550, "5.7.1", "'eicar.com'", "'"+harness.EicarSignature)
		c.waitNotDelivered(t, "yenc eicar")
	})

	t.Run("infected: strip removes the text part that holds the file", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}}\n")
		notes := harness.Attachment{Name: "notes.txt", ContentType: "text/plain", Data: []byte("agenda\n")}
		text := "Hello list,\r\n" + corpus.Uuencode("eicar.com", harness.EICAR()) + "bye\r\n"
		wantCode(t, post(t, c, "uuencoded eicar, stripped", text, notes), 250)
		d := c.delivered(t, "uuencoded eicar, stripped")
		if bytes.Contains(d.Data, []byte("begin 644 eicar.com")) {
			t.Fatalf("the uuencoded EICAR was delivered:\n%s", d.Data)
		}
		if !bytes.Contains(d.Data, []byte("YWdlbmRhCg==")) { // agenda\n, base64
			t.Errorf("the clean attachment is gone:\n%s", d.Data)
		}
	})

	t.Run("infected: strip cannot strip a single-part body: rejected", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}}\n")
		text := "Hello list,\r\n" + corpus.Uuencode("eicar.com", harness.EICAR()) + "bye\r\n"
		wantCode(t, post(t, c, "uuencoded eicar, whole body", text), 550, "'eicar.com'")
		c.waitNotDelivered(t, "uuencoded eicar, whole body")
	})
}

// yencode is a yEnc 1.3 block of data named name, in lines of 128.
func yencode(name string, data []byte) string {
	var b strings.Builder
	b.WriteString("=ybegin line=128 size=" + strconv.Itoa(len(data)) + " name=" + name + "\r\n")
	col := 0
	for _, c := range data {
		o := c + 42
		if o == 0 || o == '\n' || o == '\r' || o == '=' || col == 0 && (o == '.' || o == ' ' || o == '\t') {
			b.WriteByte('=')
			o += 64
			col++
		}
		b.WriteByte(o)
		if col++; col >= 128 {
			b.WriteString("\r\n")
			col = 0
		}
	}
	b.WriteString("\r\n=yend size=" + strconv.Itoa(len(data)) + "\r\n")
	return b.String()
}
