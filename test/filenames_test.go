package test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// partMessage is a multipart/mixed message from sender to the list with a
// text part and one attachment whose header lines are given as they are.
// top replaces the message's own Content-Type line when not empty.
func partMessage(subject, top string, partHeader ...string) []byte {
	boundary := "names-" + strings.NewReplacer(" ", "-", "/", "-").Replace(subject)
	if top == "" {
		top = fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"%s\"", boundary)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%d.names@avtest.localdomain>\r\nMIME-Version: 1.0\r\n%s\r\n\r\n",
		sender, listRcp, subject, time.Now().Format(time.RFC1123Z), time.Now().UnixNano(), top)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello list,\r\nsee attached.\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\n", boundary)
	for _, l := range partHeader {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(base64.StdEncoding.EncodeToString([]byte("MZ\x90\x00 a harmless program, but an .exe")) + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return []byte(b.String())
}

// TestFileNamesClientsSee: the file names a mail client shows are the
// names the extension rules judge. Through real Postfix, avmilter,
// avstation and clamd, with a *.exe block rule, each header form below
// names an .exe and is rejected with 550, and nothing reaches the list;
// and a part whose Content-* fields a reader has to guess at (two
// Content-Type fields, two boundaries) is unscannable, tagged so by the
// default policy. Before names were read leniently (issue 10, item 2),
// every one of these was delivered as Clean.
func TestFileNamesClientsSee(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "names-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	url := "http://" + station.Addr
	block := "  extension_filters:\n    rules:\n      - {mask: \"*.exe\", action: block}\n"
	c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret, Policy: block}))

	const octet = "Content-Type: application/octet-stream"
	forms := []struct {
		name   string
		header []string
		reply  string // in the 550 reply besides the code
	}{
		{"rfc2231 windows-1252", []string{octet, "Content-Disposition: attachment; filename*=windows-1252''setup.exe"}, "'setup.exe'"},
		{"junk token after the name", []string{octet, `Content-Disposition: attachment; filename="setup.exe"; x`}, "'setup.exe'"},
		{"junk value after the name", []string{octet, `Content-Disposition: attachment; filename="setup.exe"; size=1 2`}, "'setup.exe'"},
		// "вирус.exe" in windows-1251 and in koi8-r
		{"rfc2047 windows-1251", []string{octet, `Content-Disposition: attachment; filename="=?windows-1251?B?4ujw8/EuZXhl?="`}, ".exe'"},
		{"rfc2047 koi8-r", []string{octet, `Content-Disposition: attachment; filename="=?koi8-r?Q?=D7=C9=D2=D5=D3.exe?="`}, ".exe'"},
		{"rfc2231 iso-8859-1", []string{octet, "Content-Disposition: attachment; filename*=iso-8859-1''r%E9sum%E9.exe"}, ".exe'"},
		{"rfc2231 continuations", []string{octet, `Content-Disposition: attachment; filename*0="set"; filename*1="up.exe"`}, "'setup.exe'"},
		{"name only, windows-1251", []string{`Content-Type: application/octet-stream; name="=?windows-1251?B?4ujw8/EuZXhl?="`}, ".exe'"},
		{"name differs from filename", []string{`Content-Type: application/octet-stream; name="setup.exe"`, `Content-Disposition: attachment; filename="notes.txt"`}, "'setup.exe'"},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			subject := "name form " + f.name
			r := harness.Send(t, c.postfix.SMTPAddr, sender, []string{listRcp}, partMessage(subject, "", f.header...))
			wantCode(t, r, 550, "5.7.1", f.reply)
			c.milter.WaitLog(t, 5*time.Second, "outcome=banned-name", "action=reject")
			c.waitNotDelivered(t, subject)
		})
	}

	// The default policy tags unscannable mail: delivered, and says so.
	d := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret}))
	guessed := []struct {
		name, top string
		header    []string
	}{
		{"two Content-Type fields", "", []string{"Content-Type: text/plain", "Content-Type: application/octet-stream"}},
		{"two boundaries", "Content-Type: multipart/mixed; boundary=\"names-two-boundaries\"; boundary=\"other\"", []string{"Content-Type: text/plain"}},
	}
	for _, g := range guessed {
		t.Run(g.name, func(t *testing.T) {
			subject := "guessed " + strings.ReplaceAll(g.name, " ", "-")
			top := strings.ReplaceAll(g.top, "names-two-boundaries", "names-"+strings.NewReplacer(" ", "-", "/", "-").Replace(subject))
			r := harness.Send(t, d.postfix.SMTPAddr, sender, []string{listRcp}, partMessage(subject, top, g.header...))
			wantCode(t, r, 250)
			got := header(d.delivered(t, subject), "X-Virus-Status")
			if len(got) != 1 || got[0] != "Unscanned (unparseable)" {
				t.Errorf("X-Virus-Status %q, want one \"Unscanned (unparseable)\"", got)
			}
			d.milter.WaitLog(t, 5*time.Second, "outcome=unscannable", "action=accept")
		})
	}
}
