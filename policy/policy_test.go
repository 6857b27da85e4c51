package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/avstation/avstation/verdict"
)

func infected(threat, file string) *verdict.Verdict {
	v := &verdict.Verdict{Scanner: "avstation test on scan1"}
	v.Add(verdict.Finding{Path: "2", FileName: file, Kind: verdict.KindVirus, Threat: threat})
	return v
}

func withFinding(k verdict.Kind, detail string) *verdict.Verdict {
	v := &verdict.Verdict{Scanner: "avstation test on scan1"}
	v.Add(verdict.Finding{Path: "1", Kind: k, Detail: detail})
	return v
}

func cleanVerdict() *verdict.Verdict {
	v := &verdict.Verdict{Scanner: "avstation test on scan1"}
	v.Settle()
	return v
}

func TestDecide(t *testing.T) {
	def := Defaults()
	with := func(f func(*Config)) Config { c := Defaults(); f(&c); return c }
	tests := []struct {
		name    string
		cfg     Config
		in      Input
		outcome Outcome
		verb    Verb
		reply   string // substring of the reply, "" for none
		headers []Header
	}{
		{"clean gets headers", def, Input{Lists: []string{"staff"}, Verdict: cleanVerdict()},
			OutcomeClean, AcceptMsg, "", []Header{{"X-Virus-Status", "Clean"}, {"X-Virus-Scanned", "avstation test on scan1"}}},
		{"clean without headers", with(func(c *Config) { c.Headers = false }), Input{Verdict: cleanVerdict()},
			OutcomeClean, AcceptMsg, "", nil},
		{"scanned_by overrides", with(func(c *Config) { c.ScannedBy = "our AV" }), Input{Verdict: cleanVerdict()},
			OutcomeClean, AcceptMsg, "", []Header{{"X-Virus-Status", "Clean"}, {"X-Virus-Scanned", "our AV"}}},
		{"infected rejects naming list, threat, file", def, Input{Lists: []string{"staff"}, Verdict: infected("Eicar-Test-Signature", "eicar.com")},
			OutcomeInfected, RejectMsg, "550 5.7.1 Your posting to the staff list has been rejected because it contains the 'Eicar-Test-Signature' virus in attachment 'eicar.com'.", nil},
		{"infected without a name or file", def, Input{Lists: []string{"a", "b"}, Verdict: infected("", "")},
			OutcomeInfected, RejectMsg, "to the a, b lists has been rejected because it contains a virus in the message body", nil},
		{"infected discard", with(func(c *Config) { c.Actions.Infected.Action = Discard }), Input{Verdict: infected("X", "x.exe")},
			OutcomeInfected, DiscardMsg, "", nil},
		{"infected tag", with(func(c *Config) { c.Actions.Infected.Action = Tag }), Input{Verdict: infected("Trojan:Win32/Phonzy.A!ml", "x.exe")},
			OutcomeInfected, AcceptMsg, "", []Header{{"X-Virus-Status", "Infected (Trojan:Win32/Phonzy.A!ml)"}, {"X-Virus-Scanned", "avstation test on scan1"}}},
		{"infected tag without name says ???", with(func(c *Config) { c.Actions.Infected.Action = Tag }), Input{Verdict: infected("", "")},
			OutcomeInfected, AcceptMsg, "", []Header{{"X-Virus-Status", "Infected (???)"}, {"X-Virus-Scanned", "avstation test on scan1"}}},
		{"archive member named by its path in the attachment", def, Input{Lists: []string{"dev"}, Verdict: func() *verdict.Verdict {
			v := &verdict.Verdict{}
			v.Add(verdict.Finding{Path: "2/invoice.zip/inner.7z/doc.exe", FileName: "doc.exe", Kind: verdict.KindVirus, Threat: "T"})
			return v
		}()}, OutcomeInfected, RejectMsg, "'T' virus in attachment 'invoice.zip/inner.7z/doc.exe'", nil},
		{"threat with CRLF is made safe", def, Input{Verdict: infected("Bad\r\nName", "a\x00b")},
			OutcomeInfected, RejectMsg, "'Bad??Name' virus in attachment 'a?b'", nil},
		{"station failure tempfails", def, Input{ScanError: errors.New("connection refused")},
			OutcomeStationFailure, TempfailMsg, "451 4.7.1 Virus scanning is temporarily unavailable", nil},
		{"station failure tag", with(func(c *Config) { c.Actions.StationFailure.Action = Tag }), Input{ScanError: errors.New("timeout")},
			OutcomeStationFailure, AcceptMsg, "", []Header{{"X-Virus-Status", "Unscanned (scan failed)"}}},
		{"station failure reject", with(func(c *Config) { c.Actions.StationFailure.Action = Reject }), Input{Lists: []string{"l"}, ScanError: errors.New("timeout")},
			OutcomeStationFailure, RejectMsg, "550 5.7.1 Your posting to the l list has been rejected because it could not be scanned", nil},
		{"engine error is a station failure", def, Input{Verdict: withFinding(verdict.KindScanError, "clamd down")},
			OutcomeStationFailure, TempfailMsg, "451", nil},
		{"nil verdict without error fails closed", def, Input{},
			OutcomeStationFailure, TempfailMsg, "451", nil},
		{"unknown status fails closed", def, Input{Verdict: &verdict.Verdict{Status: "probably-fine"}},
			OutcomeStationFailure, TempfailMsg, "451", nil},
		{"unsettled verdict fails closed", def, Input{Verdict: &verdict.Verdict{}},
			OutcomeStationFailure, TempfailMsg, "451", nil},
		{"clean status with findings fails closed", def, Input{Verdict: &verdict.Verdict{Status: verdict.Clean, Findings: []verdict.Finding{{Kind: verdict.KindVirus}}}},
			OutcomeStationFailure, TempfailMsg, "451", nil},
		{"unscannable tags by default", def, Input{Verdict: withFinding(verdict.KindUnscannable, "missing final boundary")},
			OutcomeUnscannable, AcceptMsg, "", []Header{{"X-Virus-Status", "Unscanned (unparseable)"}, {"X-Virus-Scanned", "avstation test on scan1"}}},
		{"limit exceeded is rejected by default, naming the limit", def, Input{Lists: []string{"dev"}, Verdict: withFinding(verdict.KindLimitExceeded, "max_parts 1000")},
			OutcomeLimitExceeded, RejectMsg, "550 5.7.1 Your posting to the dev list has been rejected because it could not be fully scanned: it goes beyond a scan limit (max_parts 1000).", nil},
		{"limit exceeded in an attachment names it", def, Input{Lists: []string{"dev"}, Verdict: func() *verdict.Verdict {
			v := &verdict.Verdict{}
			v.Add(verdict.Finding{Path: "2/bomb.zip", FileName: "bomb.zip", Kind: verdict.KindLimitExceeded, Detail: "max_expanded_bytes 536870912"})
			return v
		}()}, OutcomeLimitExceeded, RejectMsg, "rejected because attachment 'bomb.zip' could not be fully scanned: it expands beyond a scan limit (max_expanded_bytes 536870912).", nil},
		{"limit exceeded can be tagged", with(func(c *Config) { c.Actions.LimitExceeded.Action = Tag }), Input{Verdict: withFinding(verdict.KindLimitExceeded, "max_depth 20")},
			OutcomeLimitExceeded, AcceptMsg, "", []Header{{"X-Virus-Status", "Unscanned (limit exceeded)"}, {"X-Virus-Scanned", "avstation test on scan1"}}},
		{"encrypted tempfail", with(func(c *Config) { c.Actions.Encrypted.Action = Tempfail }), Input{Verdict: withFinding(verdict.KindEncrypted, "")},
			OutcomeEncrypted, TempfailMsg, "451 4.7.1 Your message could not be scanned for viruses (encrypted)", nil},
		{"infected outranks unscannable", def, Input{Verdict: func() *verdict.Verdict {
			v := withFinding(verdict.KindUnscannable, "bad boundary")
			v.Add(verdict.Finding{Kind: verdict.KindVirus, Threat: "T", FileName: "f"})
			return v
		}()}, OutcomeInfected, RejectMsg, "'T' virus in attachment 'f'", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := compiled(t, tt.cfg).Decide(tt.in)
			if d.Outcome != tt.outcome || d.Verb != tt.verb {
				t.Fatalf("got %s/%s, want %s/%s", d.Outcome, d.Verb, tt.outcome, tt.verb)
			}
			switch {
			case tt.reply == "" && d.Reply != nil:
				t.Errorf("unexpected reply %q", d.Reply)
			case tt.reply != "" && (d.Reply == nil || !strings.Contains(d.Reply.String(), tt.reply)):
				t.Errorf("reply %v does not contain %q", d.Reply, tt.reply)
			}
			if !reflect.DeepEqual(d.Headers, tt.headers) {
				t.Errorf("headers %q, want %q", d.Headers, tt.headers)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	def := Defaults()
	if p := problemsOf(def); len(p) != 0 {
		t.Fatalf("defaults have problems: %v", p)
	}
	c := Defaults()
	c.Actions.Infected.Action = "accept"
	c.Actions.StationFailure.Action = Discard
	c.Actions.Infected.Notify = []string{"admin", "postmaster"}
	c.Filters.Rules = []FilterRule{{Mask: "[", Action: "block"}, {Mask: "*.exe", Sender: "nobody", Action: "deny"}}
	p := problemsOf(c)
	for _, key := range []string{"actions.infected.action", "actions.station-failure.action", "actions.infected.notify[1]",
		"extension_filters.rules[0].mask", "extension_filters.rules[1].sender", "extension_filters.rules[1].action"} {
		if p[key] == "" {
			t.Errorf("no problem for %s: %v", key, p)
		}
	}
	if len(p) != 6 {
		t.Errorf("%d problems, want 6: %v", len(p), p)
	}
}

// TestEveryOutcomeAndAction decides each outcome with each action it takes
// and checks what the MTA is told.
func TestEveryOutcomeAndAction(t *testing.T) {
	inputs := map[Outcome]Input{
		OutcomeInfected:       {Verdict: infected("T", "x.exe")},
		OutcomeEncrypted:      {Verdict: withFinding(verdict.KindEncrypted, "zip member is encrypted")},
		OutcomeBannedName:     {Verdict: cleanWith(verdict.Part{Path: "2", FileName: "x.exe"})},
		OutcomeLimitExceeded:  {Verdict: withFinding(verdict.KindLimitExceeded, "max_ratio 100")},
		OutcomeUnscannable:    {Verdict: withFinding(verdict.KindUnscannable, "truncated")},
		OutcomeOversize:       {Oversize: true},
		OutcomeStationFailure: {ScanError: errors.New("down")},
	}
	wantVerb := map[Action]Verb{Reject: RejectMsg, Tempfail: TempfailMsg, Discard: DiscardMsg, Strip: AcceptMsg, Tag: AcceptMsg, Accept: AcceptMsg}
	for outcome, actions := range allowed {
		for _, action := range actions {
			t.Run(string(outcome)+"/"+string(action), func(t *testing.T) {
				c := Defaults()
				c.Filters.Rules = []FilterRule{{Mask: "*.exe", Action: "block"}}
				r := c.Rule(outcome)
				r.Action = action
				switch outcome {
				case OutcomeInfected:
					c.Actions.Infected = r
				case OutcomeEncrypted:
					c.Actions.Encrypted = r
				case OutcomeBannedName:
					c.Actions.BannedName = r
				case OutcomeLimitExceeded:
					c.Actions.LimitExceeded = r
				case OutcomeUnscannable:
					c.Actions.Unscannable = r
				case OutcomeOversize:
					c.Actions.Oversize = r
				case OutcomeStationFailure:
					c.Actions.StationFailure = r
				}
				if p := problemsOf(c); len(p) > 0 {
					t.Fatal(p)
				}
				d := compiled(t, c).Decide(inputs[outcome])
				if d.Outcome != outcome {
					t.Fatalf("outcome %s, want %s", d.Outcome, outcome)
				}
				want := wantVerb[action]
				if action == Strip && outcome != OutcomeInfected && outcome != OutcomeBannedName && outcome != OutcomeEncrypted {
					t.Fatalf("strip allowed for %s", outcome)
				}
				if d.Verb != want {
					t.Errorf("verb %s, want %s", d.Verb, want)
				}
				if (d.Verb == RejectMsg || d.Verb == TempfailMsg) && (d.Reply == nil || d.Reply.Code/100 != map[Verb]int{RejectMsg: 5, TempfailMsg: 4}[d.Verb]) {
					t.Errorf("reply %v for %s", d.Reply, d.Verb)
				}
				if action == Tag && (len(d.Headers) == 0 || d.Headers[0].Name != "X-Virus-Status" || d.Headers[0].Value == "Clean") {
					t.Errorf("tag headers %v", d.Headers)
				}
				if action == Strip && len(d.Strip) == 0 {
					t.Errorf("strip with nothing to strip: %+v", d)
				}
			})
		}
	}
}

// compiled is c compiled, failing the test on any problem.
func compiled(t testing.TB, c Config) *Policy {
	t.Helper()
	p, probs := Compile(c)
	if len(probs) > 0 {
		t.Fatalf("policy problems: %v", probs)
	}
	return p
}

// problemsOf is what Compile finds wrong with c, by key.
func problemsOf(c Config) map[string]string {
	_, probs := Compile(c)
	m := map[string]string{}
	for _, p := range probs {
		m[p.Key] = p.Message
	}
	return m
}

// TestUncompiledPolicyFailsClosed: a Policy that Compile did not make,
// whose filters were never compiled, decides nothing but a retry.
func TestUncompiledPolicyFailsClosed(t *testing.T) {
	withFilter := Defaults()
	withFilter.Filters.Rules = []FilterRule{{Mask: "*.exe", Action: "block"}}
	for name, p := range map[string]*Policy{"nil": nil, "by hand": {Config: withFilter}} {
		d := p.Decide(Input{Lists: []string{"dev"}, Verdict: cleanVerdict()})
		if d.Verb != TempfailMsg || d.Reply == nil || d.Reply.Code != 451 {
			t.Errorf("%s policy decided %s %v, want a tempfail", name, d.Verb, d.Reply)
		}
	}
}
