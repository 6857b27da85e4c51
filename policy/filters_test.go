package policy

import (
	"strings"
	"testing"

	"github.com/avstation/avstation/verdict"
)

func cleanWith(parts ...verdict.Part) *verdict.Verdict {
	v := &verdict.Verdict{Manifest: parts}
	v.Settle()
	return v
}

func TestExtensionFilters(t *testing.T) {
	exe := verdict.Part{Path: "2", FileName: "setup.exe"}
	zipped := verdict.Part{Path: "2/tools.zip/setup.exe", FileName: "setup.exe"}
	inner7z := verdict.Part{Path: "2/outer.zip/inner.7z/run.EXE", FileName: "run.EXE"}
	tests := []struct {
		name    string
		filters FilterConfig
		local   []string
		in      Input
		banned  bool
		where   string
	}{
		{"exe blocked", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(exe)}, true, "setup.exe"},
		{"case-insensitive, several masks", FilterConfig{Rules: []FilterRule{{Mask: "*.scr; *.EXE", Action: "block"}}},
			nil, Input{Verdict: cleanWith(exe)}, true, "setup.exe"},
		{"double extension matched by the last", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(verdict.Part{Path: "2", FileName: "invoice.pdf.exe"})}, true, "invoice.pdf.exe"},
		{"pdf mask does not catch pdf.exe", FilterConfig{Rules: []FilterRule{{Mask: "*.pdf", Action: "block"}}},
			nil, Input{Verdict: cleanWith(verdict.Part{Path: "2", FileName: "invoice.pdf.exe"})}, false, ""},
		{"trailing dots and spaces ignored", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(verdict.Part{Path: "2", FileName: "invoice.exe. . "})}, true, "invoice.exe. . "},
		{"backslash path in a name", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(verdict.Part{Path: "2", FileName: `C:\temp\x.exe`})}, true, `C:\temp\x.exe`},
		{"archive member ignored without apply_in_archives", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(zipped)}, false, ""},
		{"archive member blocked with apply_in_archives", FilterConfig{ApplyInArchives: true, Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(zipped)}, true, "tools.zip/setup.exe"},
		{"allow rule above a block wins", FilterConfig{ApplyInArchives: true, Rules: []FilterRule{
			{Mask: "setup.exe", ArchivedIn: "tools.zip", Action: "allow"}, {Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(zipped, inner7z)}, true, "outer.zip/inner.7z/run.EXE"},
		{"archived_in matches any enclosing archive", FilterConfig{ApplyInArchives: true, Rules: []FilterRule{{Mask: "*.exe", ArchivedIn: "*.7z", Action: "block"}}},
			nil, Input{Verdict: cleanWith(zipped, inner7z)}, true, "outer.zip/inner.7z/run.EXE"},
		{"archived_in does not match a plain attachment", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", ArchivedIn: "*.zip", Action: "block"}}},
			nil, Input{Verdict: cleanWith(exe)}, false, ""},
		{"sender scope remote: local sender not blocked", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Sender: "remote", Action: "block"}}},
			[]string{"example.org"}, Input{Sender: "a@example.org", Verdict: cleanWith(exe)}, false, ""},
		{"sender scope remote: remote sender blocked", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Sender: "remote", Action: "block"}}},
			[]string{"example.org"}, Input{Sender: "a@elsewhere.net", Verdict: cleanWith(exe)}, true, "setup.exe"},
		{"authenticated sender is local", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Sender: "local", Action: "block"}}},
			[]string{"example.org"}, Input{Sender: "a@elsewhere.net", Authenticated: true, Verdict: cleanWith(exe)}, true, "setup.exe"},
		{"recipient scope local", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Recipient: "local", Action: "block"}}},
			[]string{"lists.example.org"}, Input{Recipients: []string{"dev@lists.example.org"}, Verdict: cleanWith(exe)}, true, "setup.exe"},
		{"every name of a part: the second one blocked", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(verdict.Part{Path: "2", FileName: "readme.txt", FileNames: []string{"readme.txt", "setup.exe"}})}, true, "setup.exe"},
		{"every name of a part: an allowed name does not save a blocked one", FilterConfig{Rules: []FilterRule{
			{Mask: "readme.txt", Action: "allow"}, {Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(verdict.Part{Path: "2", FileName: "readme.txt", FileNames: []string{"readme.txt", "run.exe"}})}, true, "run.exe"},
		{"every name of a part: none blocked", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Action: "block"}}},
			nil, Input{Verdict: cleanWith(verdict.Part{Path: "2", FileName: "a.txt", FileNames: []string{"a.txt", "b.pdf"}})}, false, ""},
		{"recipient scope remote, all local", FilterConfig{Rules: []FilterRule{{Mask: "*.exe", Recipient: "remote", Action: "block"}}},
			[]string{"lists.example.org"}, Input{Recipients: []string{"dev@lists.example.org"}, Verdict: cleanWith(exe)}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			c.Filters, c.LocalDomains = tt.filters, tt.local
			if p := problemsOf(c); len(p) > 0 {
				t.Fatal(p)
			}
			d := compiled(t, c).Decide(tt.in)
			if got := d.Outcome == OutcomeBannedName; got != tt.banned {
				t.Fatalf("outcome %s, banned want %v", d.Outcome, tt.banned)
			}
			if tt.banned && (d.Verb != RejectMsg || !strings.Contains(d.Reply.Text, "'"+tt.where+"'")) {
				t.Errorf("decision %s %v, want a reject naming %q", d.Verb, d.Reply, tt.where)
			}
		})
	}
}

func TestStripAndSideEffects(t *testing.T) {
	part := func(path, file, threat string) verdict.Finding {
		return verdict.Finding{Path: path, FileName: file, Kind: verdict.KindVirus, Threat: threat}
	}
	infectedWith := func(fs ...verdict.Finding) *verdict.Verdict {
		v := &verdict.Verdict{}
		for _, f := range fs {
			v.Add(f)
		}
		return v
	}
	c := Defaults()
	c.Actions.Infected = Rule{Action: Strip, Quarantine: true, Notify: []string{"admin"}}

	d := compiled(t, c).Decide(Input{Lists: []string{"dev"}, Verdict: infectedWith(part("2", "a.exe", "T"), part("3/1", "b.com", "T2"), part("", "", "T"))})
	if d.Verb != AcceptMsg || len(d.Strip) != 2 || d.Strip[1].Path != "3/1" || !d.Quarantine || d.Notify[0] != "admin" {
		t.Errorf("strip decision %+v", d)
	}
	if d.Reply == nil || d.Reply.Code != 550 {
		t.Errorf("no fallback reply for a strip that fails: %+v", d.Reply)
	}
	if d.Headers[0].Value != "Cleaned (Infected (T) removed)" {
		t.Errorf("headers %v", d.Headers)
	}
	// Found only in the message as a whole: nothing to strip, so reject.
	d = compiled(t, c).Decide(Input{Lists: []string{"dev"}, Verdict: infectedWith(part("", "", "Whole"))})
	if d.Verb != RejectMsg || d.Action != Reject {
		t.Errorf("raw-only finding: %+v", d)
	}
}

func TestOversizeDryRunAndLists(t *testing.T) {
	c := Defaults()
	d := compiled(t, c).Decide(Input{Oversize: true})
	if d.Outcome != OutcomeOversize || d.Verb != AcceptMsg || d.Headers[0].Value != "Unscanned (too large)" {
		t.Errorf("oversize: %+v", d)
	}
	inf := &verdict.Verdict{}
	inf.Add(verdict.Finding{Path: "2", FileName: "x", Kind: verdict.KindVirus, Threat: "T"})
	c.DryRun = true
	if d := compiled(t, c).Decide(Input{Verdict: inf}); !d.DryRun || d.Verb != RejectMsg {
		t.Errorf("dry run keeps what would be done and flags it: %+v", d)
	}

	tagging := Defaults()
	tagging.Actions.Infected.Action = Tag
	discarding := Defaults()
	discarding.Actions.Infected.Action = Discard
	set := NewSet(compiled(t, Defaults()), map[string]*Policy{"chat": compiled(t, tagging), "announce": compiled(t, discarding)})
	for _, tt := range []struct {
		lists []string
		verb  Verb
	}{
		{[]string{"chat"}, AcceptMsg},
		{[]string{"announce"}, DiscardMsg},
		{[]string{"chat", "announce"}, DiscardMsg}, // the strictest wins
		{[]string{"chat", "other"}, RejectMsg},     // other has the global policy
		{[]string{"other"}, RejectMsg},
	} {
		if d := set.Decide(Input{Lists: tt.lists, Verdict: inf}); d.Verb != tt.verb {
			t.Errorf("lists %v: %s, want %s", tt.lists, d.Verb, tt.verb)
		}
	}
}

func TestStripLeavesNothingUnscanned(t *testing.T) {
	c := Defaults()
	c.Actions.Infected = Rule{Action: Strip}
	v := &verdict.Verdict{}
	v.Add(verdict.Finding{Path: "2", FileName: "a.exe", Kind: verdict.KindVirus, Threat: "T"})
	v.Add(verdict.Finding{Path: "", Kind: verdict.KindVirus, Threat: "T"})
	v.Add(verdict.Finding{Path: "3", FileName: "b.pdf", Kind: verdict.KindScanError, Detail: "clamd down"})
	if d := compiled(t, c).Decide(Input{Verdict: v}); d.Verb != TempfailMsg {
		t.Errorf("strip with an unscanned part left: %s, want tempfail", d.Verb)
	}
	v = &verdict.Verdict{}
	v.Add(verdict.Finding{Path: "2", FileName: "a.exe", Kind: verdict.KindVirus, Threat: "T"})
	v.Add(verdict.Finding{Path: "3/x.zip", FileName: "x.zip", Kind: verdict.KindEncrypted})
	d := compiled(t, c).Decide(Input{Verdict: v})
	if d.Verb != AcceptMsg || len(d.Strip) != 1 || len(d.Headers) == 0 || d.Headers[0].Value != "Encrypted" {
		t.Errorf("strip with an encrypted part left (tagged by default): %+v", d)
	}
	v = &verdict.Verdict{}
	v.Add(verdict.Finding{Path: "2", FileName: "a.exe", Kind: verdict.KindVirus, Threat: "T"})
	v.Add(verdict.Finding{Path: "2/inner.zip", FileName: "inner.zip", Kind: verdict.KindEncrypted})
	if d := compiled(t, c).Decide(Input{Verdict: v}); d.Verb != AcceptMsg || d.Headers[0].Value != "Cleaned (Infected (T) removed)" {
		t.Errorf("findings inside the stripped part go with it: %+v", d)
	}
}

func TestListsDryRunAndSideEffects(t *testing.T) {
	inf := &verdict.Verdict{}
	inf.Add(verdict.Finding{Path: "2", FileName: "x", Kind: verdict.KindVirus, Threat: "T"})
	trial := Defaults()
	trial.DryRun = true
	keep := Defaults()
	keep.Actions.Infected = Rule{Action: Tag, Quarantine: true, Notify: []string{"owner"}}
	strict := Defaults()
	strict.Actions.Infected = Rule{Action: Reject, Notify: []string{"admin"}}
	set := NewSet(compiled(t, Defaults()), map[string]*Policy{"trial": compiled(t, trial), "keep": compiled(t, keep), "strict": compiled(t, strict)})
	if d := set.Decide(Input{Lists: []string{"trial", "keep"}, Verdict: inf}); d.DryRun || d.Verb != AcceptMsg || !d.Quarantine {
		t.Errorf("a list on trial outranked one that acts: %+v", d)
	}
	d := set.Decide(Input{Lists: []string{"keep", "strict"}, Verdict: inf})
	if d.Verb != RejectMsg || !d.Quarantine || len(d.Notify) != 2 {
		t.Errorf("the refusing list dropped the other's quarantine or notices: %+v", d)
	}
}

// TestBareExtensionMask: "exe" would block only a file named "exe", so the
// rule that looks like it blocks every .exe is refused with the fix.
func TestBareExtensionMask(t *testing.T) {
	tests := []struct {
		mask, archivedIn string
		key, want        string // want "" : accepted
	}{
		{"exe", "", "mask", `"exe": exe matches only a file named exactly that, not every file with that extension; write *.exe`},
		{".EXE", "", "mask", `write *.exe`},
		{"*.scr;com", "", "mask", `com matches only a file named exactly that`},
		{"bat;cmd", "", "mask", `write *.bat;*.cmd`},
		{"*.exe", "zip", "archived_in", `"zip": zip matches only a file named exactly that`},
		{"*.exe", "", "", ""},
		{"winmail.dat", "", "", ""},
		{"setup?.exe", "*.zip", "", ""},
		{"*exe", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mask+" in "+tt.archivedIn, func(t *testing.T) {
			c := Defaults()
			c.Filters.Rules = []FilterRule{{Mask: tt.mask, ArchivedIn: tt.archivedIn, Action: "block"}}
			probs := problemsOf(c)
			if tt.want == "" {
				if len(probs) > 0 {
					t.Fatalf("refused: %v", probs)
				}
				return
			}
			got := probs["extension_filters.rules[0]."+tt.key]
			if !strings.Contains(got, tt.want) || len(probs) != 1 {
				t.Errorf("problems %v; want extension_filters.rules[0].%s with %q", probs, tt.key, tt.want)
			}
		})
	}
}

// TestDoubleExtensions: the default rule against executables shown as
// documents, switched off with one setting, and below the admin's rules.
func TestDoubleExtensions(t *testing.T) {
	tests := []struct {
		name   string
		banned bool
	}{
		{"invoice.pdf.exe", true},
		{"Invoice.PDF.EXE", true},
		{"photo.jpg   .scr", true},
		{"report.doc.com.", true}, // Windows drops the trailing dot
		{"a.b.c.pif", true},
		{"scan.pdf.lnk", true},
		{"setup.exe", false},
		{"v1.2.exe", false}, // a version number, not an extension
		{"notes.txt.zip", false},
		{"jquery.min.js", false},
		{"archive.tar.gz", false},
		{"..exe", false},
	}
	for _, tt := range tests {
		v := &verdict.Verdict{Scanner: "s", Manifest: []verdict.Part{{Path: "2", FileName: tt.name}}}
		v.Settle()
		d := compiled(t, Defaults()).Decide(Input{Lists: []string{"dev"}, Verdict: v})
		if got := d.Outcome == OutcomeBannedName; got != tt.banned {
			t.Errorf("%q: banned %v (%s), want %v", tt.name, got, d.Outcome, tt.banned)
		}
	}
	off := Defaults()
	off.Filters.BlockDoubleExtensions = false
	allow := Defaults()
	allow.Filters.Rules = []FilterRule{{Mask: "*.pdf.exe", Action: "allow"}}
	v := &verdict.Verdict{Scanner: "s", Manifest: []verdict.Part{{Path: "2", FileName: "invoice.pdf.exe"}}}
	v.Settle()
	for name, c := range map[string]Config{"switched off": off, "an allow rule above it": allow} {
		if d := compiled(t, c).Decide(Input{Verdict: v}); d.Outcome != OutcomeClean {
			t.Errorf("%s: %s", name, d.Outcome)
		}
	}
}
