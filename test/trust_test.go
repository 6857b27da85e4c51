package test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestNoticeReplay shows, through real Postfix, avmilter, avstation and
// clamd, that the mark on avmilter's own notices is no scan bypass for
// whoever receives one (issue 10, item 8): a genuine quarantine report
// carrying the stopped virus passes once; the same report sent again, or
// the mark of a notification on other content, is scanned and refused.
func TestNoticeReplay(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	// The notices go here, not through Postfix, so that the test holds
	// them as avmilter submitted them, mark and all, as a recipient would.
	captured := harness.StartSink(t)
	secret := harness.WriteSecret(t, "trust-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	const prison = "prison@lists.example.org" // list-bound: the milter sees the report
	c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{
		Station: "http://" + station.Addr, Secret: secret,
		Policy: "  actions: {infected: {action: reject, quarantine: true, notify: [admin]}}\n",
		Extra: "quarantine:\n  address: " + prison + "\n  smtp: " + captured.Addr + "\n" +
			"notify:\n  from: av@example.org\n  admin: [av-admin@example.org]\n",
	}))
	wantCode(t, c.send(t, listRcp, "virus to quarantine", eicarAttachment()), 550)
	report := captured.WaitFor(t, func(d harness.Delivered) bool { return len(d.To) == 1 && d.To[0] == prison }, 10*time.Second)
	note := captured.WaitFor(t, func(d harness.Delivered) bool { return len(d.To) == 1 && d.To[0] == "av-admin@example.org" }, 10*time.Second)
	// The report carries the posting, and so its base64 EICAR attachment.
	virus := []byte(base64.StdEncoding.EncodeToString(harness.EICAR())[:40])
	if !bytes.Contains(report.Data, virus) || noticeField(report.Data) == "" || noticeField(note.Data) == "" {
		t.Fatalf("report or notification without the virus or the notice mark:\n%s\n----\n%s", report.Data, note.Data)
	}
	reportTo := func(d harness.Delivered) bool { return len(d.To) == 1 && d.To[0] == prison }

	t.Run("a genuine notice passes once, unscanned and without its mark", func(t *testing.T) {
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, "", []string{prison}, report.Data), 250)
		got := sink.WaitFor(t, reportTo, 30*time.Second)
		if !bytes.Contains(got.Data, virus) || noticeField(got.Data) != "" {
			t.Errorf("delivered report lacks the attachment or still has the mark:\n%s", got.Data)
		}
		c.milter.WaitLog(t, 5*time.Second, "notice let through")
	})

	t.Run("the same notice sent again is scanned", func(t *testing.T) {
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, "", []string{prison}, report.Data), 550, "Eicar")
		c.waitNotDelivered(t, "the report sent again") // a marker: what was sent before it has arrived
		if n := sink.Count(reportTo); n != 1 {
			t.Errorf("the report reached the sink %d times, want once", n)
		}
	})

	t.Run("a notification's mark on other content is scanned", func(t *testing.T) {
		// The attacker's copy: the notification as received, a virus
		// added to its body, sent to the list from loopback with <>.
		forged := append(bytes.TrimRight(note.Data, "\r\n"), []byte("\r\n"+string(harness.EICAR())+"\r\n")...)
		wantCode(t, harness.Send(t, c.postfix.SMTPAddr, "", []string{listRcp}, forged), 550, "Eicar")
		// Unchanged, but to the list rather than to whom it was sent.
		r := harness.Send(t, c.postfix.SMTPAddr, "", []string{listRcp}, note.Data)
		wantCode(t, r, 250)
		got := sink.WaitFor(t, func(d harness.Delivered) bool {
			return len(d.To) == 1 && d.To[0] == listRcp && bytes.Contains(d.Data, []byte("Auto-Submitted: auto-generated"))
		}, 30*time.Second)
		if s := header(got, "X-Virus-Status"); len(s) != 1 || s[0] != "Clean" {
			t.Errorf("replayed notification delivered without being scanned (X-Virus-Status %q)", s)
		}
		if sink.Count(func(d harness.Delivered) bool { return bytes.Contains(d.Data, harness.EICAR()) && d.To[0] == listRcp }) != 0 {
			t.Error("the forged notice with a virus reached the list")
		}
	})
}

// noticeField is the X-Avstation-Notice field of msg, unfolded; "" when
// it has none.
func noticeField(msg []byte) string {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	var out []string
	in := false
	for _, line := range strings.Split(string(head), "\r\n") {
		switch {
		case strings.HasPrefix(strings.ToLower(line), "x-avstation-notice:"):
			in = true
			out = append(out, line)
		case in && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")):
			out = append(out, line)
		default:
			in = false
		}
	}
	return strings.Join(out, " ")
}

// TestOutgoingTrust shows that an envelope sender alone earns no bypass
// (issue 10, item 9): with apply_to_outgoing off, or a bypass file naming
// the sender, an unauthenticated client that says MAIL FROM:<a local
// address> is scanned, unless its network is listed in
// policy.trusted_networks (or the admin chose to trust envelopes).
func TestOutgoingTrust(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	secret := harness.WriteSecret(t, "trust-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	file := filepath.Join(t.TempDir(), "bypass")
	if err := os.WriteFile(file, []byte(sender+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, domain, _ := strings.Cut(sender, "@")
	milterWith := func(t *testing.T, policy, extra string) *chain {
		return newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{
			Station: "http://" + station.Addr, Secret: secret, Policy: policy, Extra: extra}))
	}
	outgoingOff := "  apply_to_outgoing: false\n  local_domains: [" + domain + "]\n"
	trusted := "  trusted_networks: [127.0.0.1/32]\n"

	for _, tt := range []struct {
		name, policy, extra string
		code                int
	}{
		{"apply_to_outgoing off: a local MAIL FROM from an untrusted client is scanned", outgoingOff, "", 550},
		{"a bypass-file sender entry alone is scanned", "", "bypass_file: " + file + "\n", 550},
		{"apply_to_outgoing off: a trusted network is outgoing mail", outgoingOff + trusted, "", 250},
		{"a bypass-file sender entry from a trusted network is not scanned", trusted, "bypass_file: " + file + "\n", 250},
		{"bypass_trusts_envelope: the sender entry alone is enough", "", "bypass_file: " + file + "\nbypass_trusts_envelope: true\n", 250},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := milterWith(t, tt.policy, tt.extra)
			subject := "outgoing " + strings.Fields(tt.name)[0] + " " + time.Now().Format("150405.000000")
			r := c.send(t, listRcp, subject, eicarAttachment())
			if tt.code == 550 {
				wantCode(t, r, 550, "Eicar")
				c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=reject")
				c.waitNotDelivered(t, subject)
				return
			}
			wantCode(t, r, 250)
			if d := c.delivered(t, subject); !bytes.Contains(d.Data, []byte("eicar.com")) {
				t.Errorf("delivered without the attachment:\n%s", d.Data)
			}
			c.milter.WaitLog(t, 5*time.Second, "message not scanned")
		})
	}
}
