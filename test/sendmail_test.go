package test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// smChain is a real Sendmail 8.17 with avmilter attached through
// INPUT_MAIL_FILTER (deploy/sendmail/avmilter.mc), relaying to a sink.
type smChain struct {
	sendmail *harness.Sendmail
	milter   *harness.Daemon
	sink     *harness.Sink
}

func newSendmailChain(t *testing.T, sink *harness.Sink, m *harness.Daemon) *smChain {
	t.Helper()
	return newSendmailChainT(t, sink, m, "")
}

// newSendmailChainT is newSendmailChain with the T= timeouts given; ""
// keeps deploy/sendmail/avmilter.mc's.
func newSendmailChainT(t *testing.T, sink *harness.Sink, m *harness.Daemon, timeouts string) *smChain {
	t.Helper()
	sm := harness.StartSendmail(t, harness.SendmailOptions{Milter: "inet:" + m.Addr, RelayTo: sink.Addr, MilterTimeouts: timeouts})
	t.Cleanup(func() {
		m.Stop()
		m.SpoolEmpty(t)
	})
	return &smChain{sendmail: sm, milter: m, sink: sink}
}

// want is wantCode that shows Sendmail's log when the reply is not the
// one wanted.
func (c *smChain) want(t *testing.T, r harness.SendResult, code int, texts ...string) {
	t.Helper()
	if r.Code != code {
		t.Logf("--- sendmail log (tail)\n%s", c.sendmail.LogTail(15))
	}
	wantCode(t, r, code, texts...)
}

// send posts msg and returns Sendmail's reply to it.
func (c *smChain) send(t *testing.T, subject string, msg []byte) harness.SendResult {
	t.Helper()
	r := harness.Send(t, c.sendmail.SMTPAddr, sender, []string{listRcp}, msg)
	if r.Err != nil {
		t.Fatalf("send %q: %v\n--- sendmail log (tail)\n%s", subject, r.Err, c.sendmail.LogTail(20))
	}
	return r
}

func (c *smChain) post(t *testing.T, subject string, atts ...harness.Attachment) harness.SendResult {
	t.Helper()
	return c.send(t, subject, harness.BuildMessage(sender, listRcp, subject, "Hello list,\r\nsee attached.\r\n", atts...))
}

func (c *smChain) delivered(t *testing.T, subject string) harness.Delivered {
	t.Helper()
	return c.sink.WaitFor(t, withSubject(subject), 30*time.Second)
}

// notDelivered proves subject was not relayed: a clean posting sent after
// it arrives, and it has not.
func (c *smChain) notDelivered(t *testing.T, subject string) {
	t.Helper()
	marker := subject + " (marker)"
	c.want(t, c.post(t, marker), 250)
	c.delivered(t, marker)
	if n := c.sink.Count(withSubject(subject)); n != 0 {
		t.Errorf("%q was delivered %d times, want 0", subject, n)
	}
}

// TestSendmail runs list postings through a real Sendmail 8.17 (Debian's
// packages, unpacked next to Postfix), avmilter, avstation and clamd, with
// the .mc lines of deploy/sendmail/avmilter.mc (S= aside); the long scan
// uses the T= timeouts of harness.SendmailTestTimeouts. README's Sendmail
// section gives both.
func TestSendmail(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "sendmail-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	url := "http://" + station.Addr
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	milterWith := func(t *testing.T, policy, extra string) *smChain {
		return newSendmailChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: url, Secret: secret, Policy: policy, Extra: extra}))
	}

	t.Run("clean posting is delivered with the header", func(t *testing.T) {
		c := milterWith(t, "", "")
		r := c.post(t, "clean via sendmail")
		c.want(t, r, 250, "2.0.0")
		d := c.delivered(t, "clean via sendmail")
		if got := header(d, "X-Virus-Status"); len(got) != 1 || got[0] != "Clean" {
			t.Errorf("X-Virus-Status = %q, want [Clean]\n%s", got, d.Data)
		}
		if got := header(d, "X-Virus-Scanned"); len(got) != 1 || !strings.HasPrefix(got[0], "avstation ") {
			t.Errorf("X-Virus-Scanned = %q", got)
		}
		// Sendmail's queue id (the i macro at end of message) is the one
		// in its 250 reply and in avmilter's line.
		m := regexp.MustCompile(`2\.0\.0 ([0-9A-Za-z]+) Message accepted`).FindStringSubmatch(r.Text)
		if m == nil {
			t.Fatalf("no queue id in Sendmail's reply %q", r.Text)
		}
		c.milter.WaitLog(t, 5*time.Second, "message scanned", "queue_id="+m[1]+" ", "outcome=clean", "action=accept", "lists=[dev]")
		line := c.milter.WaitLog(t, 5*time.Second, "milter negotiated")
		t.Logf("Sendmail negotiated: mta_version=%s offered_data_size=%s, avmilter uses data_size=%s",
			field(line, "mta_version"), field(line, "offered_data_size"), field(line, "data_size"))
	})

	t.Run("EICAR posting is rejected with the LISTSERV text", func(t *testing.T) {
		c := milterWith(t, "", "")
		r := c.post(t, "eicar via sendmail", eicarAttachment())
		t.Logf("Sendmail answered: %d %s", r.Code, r.Text)
		c.want(t, r, 550, "5.7.1", "Your posting to the dev list has been rejected because it contains the 'Eicar",
			"virus in attachment 'eicar.com'. You are strongly advised to check your computer for viruses.")
		c.milter.WaitLog(t, 5*time.Second, "message scanned", "outcome=infected", "action=reject")
		c.sendmail.WaitLog(t, 5*time.Second, "Milter: data, reject=550 5.7.1")
		c.notDelivered(t, "eicar via sendmail")
	})

	t.Run("discard accepts and drops", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: discard}}\n", "")
		c.want(t, c.post(t, "eicar discarded via sendmail", eicarAttachment()), 250)
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=discard")
		c.sendmail.WaitLog(t, 5*time.Second, "Milter: data, discard")
		c.notDelivered(t, "eicar discarded via sendmail")
	})

	t.Run("tag delivers with the threat in the header", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: tag}}\n", "")
		c.want(t, c.post(t, "eicar tagged via sendmail", eicarAttachment()), 250)
		d := c.delivered(t, "eicar tagged via sendmail")
		if got := header(d, "X-Virus-Status"); len(got) != 1 || !strings.HasPrefix(got[0], "Infected (Eicar") {
			t.Errorf("X-Virus-Status = %q, want Infected (Eicar...)", got)
		}
	})

	t.Run("strip in a body over 64 KB keeps the other parts byte for byte", func(t *testing.T) {
		c := milterWith(t, "  actions: {infected: {action: strip}}\n", "")
		notes := harness.Attachment{Name: "notes.txt", ContentType: "text/plain", Data: []byte("agenda: 1. budget 2. party\n")}
		// About 420 KB encoded: the replaced body goes back in several
		// packets, past any data size Sendmail offers (64 KB, 256 KB, 1 MB
		// chunks are each exercised by a body this long or the next).
		pdf := harness.Attachment{Name: "report.pdf", ContentType: "application/pdf",
			Data: []byte("%PDF-1.4\n" + strings.Repeat("% not really a report, just long enough\n", 8000) + "%%EOF\n")}
		msg := harness.BuildMessage(sender, listRcp, "strip via sendmail", "Hello list\r\n", notes, eicarAttachment(), pdf)
		if len(msg) < 256*1024 {
			t.Fatalf("message of %d bytes: want more than 256 KB", len(msg))
		}
		c.want(t, c.send(t, "strip via sendmail", msg), 250)
		d := c.delivered(t, "strip via sendmail")
		if got := header(d, "X-Virus-Removed"); len(got) != 1 || !strings.HasPrefix(got[0], "eicar.com (Eicar") {
			t.Errorf("X-Virus-Removed = %q", got)
		}
		sentParts, gotParts := rawParts(t, msg), rawParts(t, d.Data)
		if len(sentParts) != 4 || len(gotParts) != 4 {
			t.Fatalf("parts sent %d, delivered %d", len(sentParts), len(gotParts))
		}
		for _, i := range []int{0, 1, 3} { // text, notes.txt, report.pdf
			if !bytes.Equal(sentParts[i], gotParts[i]) {
				t.Errorf("part %d changed (%d bytes sent, %d delivered)", i+1, len(sentParts[i]), len(gotParts[i]))
			}
		}
		if bytes.Contains(gotParts[2], []byte("base64")) || !bytes.Contains(gotParts[2], []byte("eicar.com")) {
			t.Errorf("infected part not replaced by a note: %q", gotParts[2])
		}
		if decoded := decodedParts(t, d.Data); !bytes.Equal(decoded[3], pdf.Data) {
			t.Errorf("decoded report.pdf differs")
		}
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=accept", "stripped=")
	})

	t.Run("progress keeps a scan longer than the R= timeout alive", func(t *testing.T) {
		// The station's clamd answers each scan after 6 s, twice R (3 s)
		// of SendmailTestTimeouts; a clean posting takes one scan (clamd
		// parses the message itself), within E (60 s).
		const scanDelay = 6 * time.Second
		slowClamd := harness.StartSlowClamd(t, clamd.Addr, scanDelay)
		slow := harness.StartStation(t, bin.Station, "", slowClamd.Addr, secret)
		t.Cleanup(func() {
			slow.Stop()
			slow.SpoolEmpty(t)
		})
		slowMilter := func(t *testing.T, progress string, timeouts string) *smChain {
			m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + slow.Addr, Secret: secret, Extra: "progress_interval: " + progress + "\n"})
			return newSendmailChainT(t, sink, m, timeouts)
		}
		// A body of its own each time: the station caches verdicts by content.
		plain := func(subject string) []byte {
			return []byte("From: <" + sender + ">\r\nTo: <" + listRcp + ">\r\nSubject: " + subject + "\r\n\r\nA long scan: " + subject + ".\r\n")
		}
		c := slowMilter(t, "1s", harness.SendmailTestTimeouts)
		start := time.Now()
		r := c.send(t, "slow scan via sendmail", plain("slow scan via sendmail"))
		took := time.Since(start)
		c.want(t, r, 250)
		t.Logf("decided after %v (%d clamd scans of %v), progress every 1s, T=%s", took.Round(time.Millisecond), slowClamd.Scans(), scanDelay, harness.SendmailTestTimeouts)
		if took < scanDelay || slowClamd.Scans() == 0 {
			t.Fatalf("answered after %v, %d scans: the scan was not slow", took, slowClamd.Scans())
		}
		if got := header(c.delivered(t, "slow scan via sendmail"), "X-Virus-Status"); len(got) != 1 || got[0] != "Clean" {
			t.Errorf("X-Virus-Status = %q, want [Clean]", got)
		}
		if strings.Contains(c.sendmail.Log(), "timeout") {
			t.Errorf("Sendmail logged a timeout:\n%s", c.sendmail.LogTail(20))
		}

		// Without progress within R, Sendmail times the milter out and F=T
		// tempfails: the progress above is what kept the message.
		quiet := slowMilter(t, "30s", harness.SendmailTestTimeouts)
		r = quiet.send(t, "slow scan without progress", plain("slow scan without progress"))
		quiet.want(t, r, 451, "4.3.2")
		quiet.sendmail.WaitLog(t, 5*time.Second, "Milter (avmilter): timeout")

		// E is a total that progress does not extend: shorter than the
		// scan, Sendmail gives up at E. Hence E longer than scan_timeout.
		short := slowMilter(t, "1s", "S:5s;R:3s;E:5s")
		r = short.send(t, "slow scan past E", plain("slow scan past E"))
		short.want(t, r, 451, "4.3.2")
		short.sendmail.WaitLog(t, 5*time.Second, "EOM ACK/NAK timeout")
		for _, s := range []string{"slow scan without progress", "slow scan past E"} {
			if n := sink.Count(withSubject(s)); n != 0 {
				t.Errorf("%q delivered %d times after Sendmail's timeout", s, n)
			}
		}
	})

	t.Run("station down tempfails", func(t *testing.T) {
		own := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
		c := newSendmailChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + own.Addr, Secret: secret}))
		own.Stop()
		c.want(t, c.post(t, "posting via sendmail while station down"), 451, "4.7.1")
		c.milter.WaitLog(t, 5*time.Second, "outcome=station-failure", "action=tempfail")
		if n := sink.Count(withSubject("posting via sendmail while station down")); n != 0 {
			t.Fatalf("delivered %d while the station was down", n)
		}
		own.SpoolEmpty(t)
	})
}

// TestReadmeSendmail keeps README's Sendmail section equal to what the
// Sendmail tests use: every line of deploy/sendmail/avmilter.mc that is not
// a comment, and the T= timeouts of the tests.
func TestReadmeSendmail(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### Sendmail\n")
	if !ok {
		t.Fatal("README.md has no ### Sendmail section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	section, _, _ = strings.Cut(section, "\n### ")
	mc, err := os.ReadFile(filepath.Join("..", harness.SendmailMC))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(mc), "\n") {
		if line == "" || strings.HasPrefix(line, "dnl") {
			continue
		}
		n++
		if !strings.Contains(section, line) {
			t.Errorf("README's Sendmail section lacks the %s line\n%s", harness.SendmailMC, line)
		}
	}
	if n < 3 {
		t.Fatalf("%s has %d lines that are not comments; want INPUT_MAIL_FILTER and the macros", harness.SendmailMC, n)
	}
	for _, want := range []string{"T=" + harness.SendmailTestTimeouts, "progress_interval: 1s"} {
		if !strings.Contains(section, want) {
			t.Errorf("README's Sendmail section does not give the tests' %q", want)
		}
	}
}
