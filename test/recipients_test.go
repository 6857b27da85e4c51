package test

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// rcptCase is one spelling of a recipient, as the client writes it after
// "RCPT TO:", and what must come of EICAR sent to it.
type rcptCase struct {
	arg    string
	code   int    // the SMTP reply to the message (or to RCPT when Postfix refuses it)
	reply  string // in the reply text
	utf8   bool   // MAIL FROM with SMTPUTF8
	bySelf bool   // Postfix itself refuses the recipient
}

// rcptCases are the spellings through which EICAR once reached a list:
// each one Postfix delivers to a list address (or to an alias of one), so
// each must be scanned and refused.
var rcptCases = []rcptCase{
	{arg: "<dev@lists.example.org>", code: 550, reply: "to the dev list"},
	{arg: "<dev@lists.example.org.>", code: 550, reply: "to the dev list"},
	{arg: "<@relay.example:dev@lists.example.org>", code: 550, reply: "to the dev list"},
	{arg: "<@a.example,@b.example:dev@lists.example.org>", code: 550, reply: "to the dev list"},
	{arg: `<"dev"@lists.example.org>`, code: 550, reply: "to the dev list"},
	{arg: `<"d\ev"@lists.example.org>`, code: 550, reply: "to the dev list"},
	{arg: "<dev@LISTS.EXAMPLE.ORG>", code: 550, reply: "to the dev list"},
	{arg: "<dev(comment)@lists.example.org>", code: 550, reply: "to the dev list"},
	{arg: "<dev @ lists.example.org>", code: 550, reply: "to the dev list"},
	{arg: "<<dev@lists.example.org>>", code: 550, reply: "to the dev list"},
	{arg: "dev@lists.example.org", code: 550, reply: "to the dev list"},
	{arg: "<dev+x@lists.example.org>", code: 550, reply: "to the dev list"},
	{arg: `<"staff"@example.org>`, code: 550, reply: "to the STAFF list"},
	{arg: "<staff+x@example.org>", code: 550, reply: "to the STAFF list"},
	{arg: "<Staff@Example.Org.>", code: 550, reply: "to the STAFF list"},
	// Postfix's own rewrites (allow_percent_hack, swap_bangpath: both on
	// by default): the address it delivers to is the list's.
	{arg: "<dev%lists.example.org@[127.0.0.1]>", code: 550, reply: "to the dev list"},
	{arg: "<dev%lists.example.org>", code: 550, reply: "to the dev list"},
	{arg: "<lists.example.org!dev>", code: 550, reply: "to the dev list"},
	{arg: "<lists.example.org!dev@[127.0.0.1]>", code: 550, reply: "to the dev list"},
	{arg: `<"dev@lists.example.org"@[127.0.0.1]>`, code: 550, reply: "to the dev list"},
	{arg: "<dev@lists.example.org@[127.0.0.1]>", code: 550, reply: "to the dev list"},
	{arg: "<staff%example.org@[127.0.0.1]>", code: 550, reply: "to the STAFF list"},
	// UTF-8 and A-label forms of a list domain configured in UTF-8.
	{arg: "<dev@listes.xn--exmple-cua.fr>", code: 550, reply: "to the dev list"},
	{arg: "<dev@LISTES.EXÄMPLE.FR>", code: 550, reply: "to the dev list", utf8: true},
	// Odd local parts: unparsed as written, but Postfix's {rcpt_addr}
	// (".dev"@...) names the address it delivers to.
	{arg: "<.dev@lists.example.org>", code: 550, reply: "to the .dev list"},
	{arg: "<d..ev@lists.example.org>", code: 550, reply: "to the d..ev list"},
	// An alias Postfix expands to the list after RCPT: held by hold.
	{arg: "<team@example.org>", code: 550},
	// Refused by Postfix itself: nothing to scan.
	{arg: "<dev@lists.example.org..>", code: 501, bySelf: true},
}

// TestRecipientSpellings sends EICAR to each spelling through real Postfix,
// avmilter and clamd, scanning on a station and in-process: each is
// refused, and nothing reaches the sink.
func TestRecipientSpellings(t *testing.T) {
	clamd := harness.StartClamd(t)
	secret := harness.WriteSecret(t, "correct-horse-battery")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	t.Cleanup(func() {
		station.Stop()
		station.SpoolEmpty(t)
	})
	o := harness.MilterOptions{
		Lists: `  - match: "*@lists.example.org"` + "\n" +
			`  - {match: staff@example.org, name: STAFF}` + "\n" +
			`  - match: "*@listes.exämple.fr"` + "\n",
		Extra: "recipient_delimiter: \"+\"\nhold: [team@example.org]\n",
	}
	for _, mode := range []struct {
		name string
		opts func(harness.MilterOptions) harness.MilterOptions
	}{
		{"station", func(o harness.MilterOptions) harness.MilterOptions {
			o.Station, o.Secret = "http://"+station.Addr, secret
			return o
		}},
		{"in-process", func(o harness.MilterOptions) harness.MilterOptions { o.Clamd = clamd.Addr; return o }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			sink := harness.StartSink(t)
			m := harness.StartMilter(t, bin.Milter, mode.opts(o))
			pf := harness.StartPostfix(t, harness.PostfixOptions{Milter: "inet:" + m.Addr, RelayTo: sink.Addr, Main: map[string]string{
				"smtputf8_enable":    "yes",
				"virtual_alias_maps": "inline:{ team@example.org=dev@lists.example.org }",
			}})
			t.Cleanup(func() {
				m.Stop()
				m.SpoolEmpty(t)
			})
			for i, tc := range rcptCases {
				subject := fmt.Sprintf("EICAR %s %d", mode.name, i)
				code, text, stage := sendRcpt(t, pf.SMTPAddr, tc, harness.BuildMessage(sender, "list@lists.example.org", subject, "see attached\r\n", eicarAttachment()))
				if code != tc.code || !strings.Contains(text, tc.reply) || (stage == "RCPT") != tc.bySelf {
					t.Errorf("RCPT TO:%s: %s answered %d %q; want %d with %q (refused at RCPT: %v)\npostfix log:\n%s",
						tc.arg, stage, code, text, tc.code, tc.reply, tc.bySelf, pf.LogTail(10))
				}
			}
			// A clean message after all of them arrives; none of them has.
			marker := "marker " + mode.name
			r := harness.Send(t, pf.SMTPAddr, sender, []string{listRcp}, harness.BuildMessage(sender, listRcp, marker, "clean\r\n"))
			wantCode(t, r, 250)
			sink.WaitFor(t, withSubject(marker), 30*time.Second)
			for _, d := range sink.Messages() {
				if s := header(d, "Subject"); len(s) == 1 && strings.HasPrefix(s[0], "EICAR ") {
					t.Errorf("%q reached the sink for %v", s[0], d.To)
				}
			}
		})
	}
}

// sendRcpt sends msg in one transaction with the recipient written as
// tc.arg, and returns the last reply and the command it answered.
func sendRcpt(t *testing.T, addr string, tc rcptCase, msg []byte) (int, string, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := textproto.NewReader(bufio.NewReader(conn))
	mail := "MAIL FROM:<" + sender + ">"
	if tc.utf8 {
		mail += " SMTPUTF8"
	}
	steps := []struct{ verb, line string }{{"greeting", ""}, {"EHLO", "EHLO avtest-client.localdomain"}, {"MAIL", mail},
		{"RCPT", "RCPT TO:" + tc.arg}, {"DATA", "DATA"}, {"end of data", string(dotStuffed(msg)) + "."}}
	for _, s := range steps {
		if s.line != "" {
			if _, err := fmt.Fprintf(conn, "%s\r\n", s.line); err != nil {
				t.Fatalf("%s: %v", s.verb, err)
			}
		}
		code, text, err := r.ReadResponse(0)
		if code == 0 {
			t.Fatalf("RCPT TO:%s: reply to %s: %v", tc.arg, s.verb, err)
		}
		if code >= 400 || s.verb == "end of data" {
			fmt.Fprintf(conn, "QUIT\r\n")
			return code, text, s.verb
		}
	}
	panic("unreachable")
}

// dotStuffed is msg with CRLF line ends and leading dots doubled.
func dotStuffed(msg []byte) []byte {
	s := strings.ReplaceAll(string(msg), "\r\n", "\n")
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			lines[i] = "." + l
		}
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}
