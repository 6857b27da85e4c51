package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/avstation/avstation/verdict"
)

// TestReplyTemplates: the reply is the admin's text with the placeholders
// filled, and LISTSERV's wording, advice included, when none is set.
func TestReplyTemplates(t *testing.T) {
	banned := &verdict.Verdict{Scanner: "s"}
	banned.Manifest = []verdict.Part{{Path: "2", FileName: "setup.exe", ContentType: "application/octet-stream"}}
	banned.Settle()
	with := func(f func(*Config)) Config {
		c := Defaults()
		f(&c)
		if probs := problemsOf(c); len(probs) > 0 {
			t.Fatalf("config problems: %v", probs)
		}
		return c
	}
	tests := []struct {
		name string
		cfg  Config
		in   Input
		want string // the whole reply
	}{
		{"LISTSERV's default for a virus", Defaults(), Input{Lists: []string{"dev"}, Verdict: infected("Eicar-Test-Signature", "eicar.com")},
			"550 5.7.1 Your posting to the dev list has been rejected because it contains the 'Eicar-Test-Signature' virus in attachment 'eicar.com'. You are strongly advised to check your computer for viruses."},
		{"default without list, file or name", Defaults(), Input{Verdict: infected("", "")},
			"550 5.7.1 Your posting has been rejected because it contains a virus in the message body. You are strongly advised to check your computer for viruses."},
		{"the admin's text", with(func(c *Config) {
			c.Actions.Infected.Reply = "%%List%%: '%%virusname%%' found in %%FileName%% (%%Reason%%)"
		}), Input{Lists: []string{"dev"}, Verdict: infected("Worm.X", "a.doc")},
			"550 5.7.1 dev: 'Worm.X' found in a.doc (it contains the 'Worm.X' virus in attachment 'a.doc')"},
		{"the admin's text for a tempfail", with(func(c *Config) {
			c.Actions.Infected.Action = Tempfail
			c.Actions.Infected.Reply = "Held: %%VirusName%%"
		}), Input{Lists: []string{"dev"}, Verdict: infected("Worm.X", "a.doc")},
			"451 4.7.1 Held: Worm.X"},
		{"banned name default", with(func(c *Config) {
			c.Filters.Rules = []FilterRule{{Mask: "*.exe", Action: "block"}}
		}), Input{Lists: []string{"dev"}, Verdict: banned},
			"550 5.7.1 Your posting to the dev list has been rejected because attachments like 'setup.exe' are not accepted."},
		{"a hostile file name stays one printable line", Defaults(), Input{Lists: []string{"dev"}, Verdict: infected("T", "a\r\n250 ok\x00é.exe")},
			"550 5.7.1 Your posting to the dev list has been rejected because it contains the 'T' virus in attachment 'a??250 ok??.exe'. You are strongly advised to check your computer for viruses."},
		{"a placeholder in a value is not expanded", Defaults(), Input{Lists: []string{"dev"}, Verdict: infected("%%List%%", "x")},
			"550 5.7.1 Your posting to the dev list has been rejected because it contains the '%%List%%' virus in attachment 'x'. You are strongly advised to check your computer for viruses."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := compiled(t, tt.cfg).Decide(tt.in)
			if d.Reply == nil || d.Reply.String() != tt.want {
				t.Errorf("reply\n got %v\nwant %s", d.Reply, tt.want)
			}
		})
	}
}

func TestReplyTemplateProblems(t *testing.T) {
	tests := []struct{ reply, want string }{
		{"Rejected: %%Virus%%", "%%Virus%% is not a placeholder; use %%List%%, %%VirusName%%, %%FileName%%, %%Reason%%"},
		{"Rejected:\r\n250 ok", "a line break"},
		{"Abgelehnt wegen Virus – %%VirusName%%", "not printable ASCII"},
		{"tab\there", "not printable ASCII"},
	}
	for _, tt := range tests {
		c := Defaults()
		c.Actions.BannedName.Reply = tt.reply
		probs := problemsOf(c)
		if got := probs["actions.banned-name.reply"]; !strings.Contains(got, tt.want) {
			t.Errorf("reply %q: problem %q, want one with %q (all: %v)", tt.reply, got, tt.want, probs)
		}
	}
}

// TestRescanned: a strip stands only when the rewritten body scans clean.
func TestRescanned(t *testing.T) {
	c := Defaults()
	c.Actions.Infected = Rule{Action: Strip}
	set := NewSet(compiled(t, c), nil)
	in := Input{Lists: []string{"dev"}, Verdict: infected("Eicar", "eicar.com")}
	d := set.Decide(in)
	if d.Verb != AcceptMsg || len(d.Strip) != 1 {
		t.Fatalf("first decision %+v", d)
	}
	body := &verdict.Verdict{Scanner: "s"}
	body.Add(verdict.Finding{Path: "", Kind: verdict.KindVirus, Threat: "Eicar"}) // in the text, no part to cut
	tests := []struct {
		name  string
		v     *verdict.Verdict
		err   error
		verb  Verb
		reply string
	}{
		{"clean after the strip", cleanVerdict(), nil, AcceptMsg, ""},
		{"still infected", body, nil, RejectMsg, "550 5.7.1 Your posting to the dev list has been rejected because it contains the 'Eicar' virus in the message body."},
		{"no verdict", nil, errors.New("station down"), TempfailMsg, "451 4.7.1 Virus scanning is temporarily unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			again := in
			again.Verdict, again.ScanError = tt.v, tt.err
			got := set.Rescanned(again, d)
			if got.Verb != tt.verb || (tt.reply != "" && (got.Reply == nil || !strings.HasPrefix(got.Reply.String(), tt.reply))) {
				t.Errorf("got %s %v, want %s %q", got.Verb, got.Reply, tt.verb, tt.reply)
			}
			if got.Verb != AcceptMsg && len(got.Strip) != 0 {
				t.Errorf("a refusal still lists parts to strip: %v", got.Strip)
			}
		})
	}
}
