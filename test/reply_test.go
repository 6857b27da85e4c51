package test

import (
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestReplyTexts: what a sender's MTA receives from real Postfix is the
// admin's reply text, LISTSERV's wording by default, and a long text is a
// proper multi-line reply (each line "550-5.7.1 …", the last "550 5.7.1 …",
// none over RFC 5321's 512 octets).
func TestReplyTexts(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)

	t.Run("LISTSERV's wording by default", func(t *testing.T) {
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Clamd: clamd.Addr}))
		r := c.send(t, listRcp, "default reply", eicarAttachment())
		want := "5.7.1 Your posting to the dev list has been rejected because it contains the '" + harness.EicarSignature +
			".UNOFFICIAL' virus in attachment 'eicar.com'. You are strongly advised to check your computer for viruses."
		if r.Code != 550 || r.Text != want {
			t.Errorf("Postfix answered\n %d %q\nwant 550 %q", r.Code, r.Text, want)
		}
	})

	t.Run("a long reply of the list's own is sent as several lines", func(t *testing.T) {
		sentence := "Postings with attachments are checked for viruses by the list server; this one, '%%FileName%%', carries %%VirusName%%."
		long := strings.Repeat(sentence+" ", 6) + "Write to owner-%%List%%@lists.example.org with questions."
		policy := "  actions: {infected: {action: reject}}\n"
		extra := "list_policies:\n  dev:\n    actions:\n      infected: {reply: \"" + long + "\"}\n"
		c := newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Clamd: clamd.Addr, Policy: policy, Extra: extra}))
		r := c.send(t, listRcp, "long reply", eicarAttachment())
		if r.Code != 550 {
			t.Fatalf("Postfix answered %d %q, want 550", r.Code, r.Text)
		}
		// textproto has checked the "550-" continuation lines and the final
		// "550 " line; it joins the lines' texts with "\n".
		lines := strings.Split(r.Text, "\n")
		if len(lines) < 2 {
			t.Fatalf("a %d-byte reply came as one line: %q", len(r.Text), r.Text)
		}
		var text []string
		for i, l := range lines {
			rest, ok := strings.CutPrefix(l, "5.7.1 ")
			if !ok {
				t.Errorf("line %d has no enhanced code: %q", i+1, l)
			}
			if n := len("550-") + len(l) + len("\r\n"); n > 512 {
				t.Errorf("line %d is %d octets, over 512", i+1, n)
			}
			text = append(text, rest)
		}
		filled := strings.NewReplacer("%%FileName%%", "eicar.com", "%%VirusName%%", harness.EicarSignature+".UNOFFICIAL", "%%List%%", "dev").Replace(long)
		if got := strings.Join(text, " "); got != filled {
			t.Errorf("reply text\n got %q\nwant %q", got, filled)
		}
		c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action=reject")
	})
}
