package milter

import (
	"testing"

	"github.com/avstation/avstation/address"
	"github.com/avstation/avstation/config"
)

// TestListsSpellings: every spelling of a list address that the MTA
// delivers to the list is that list, whatever the client wrote; other
// addresses are not lists; what does not parse but names a list domain is
// held (fail closed). Each row was checked against what Postfix 3 accepts
// and delivers (test/recipients_test.go sends those through it).
func TestListsSpellings(t *testing.T) {
	cfg := &config.Milter{
		Lists: []config.ListPattern{
			{Match: "*@lists.example.org"},
			{Match: "staff@example.org", Name: "STAFF"},
			{Match: "*@listes.exämple.fr"},
			{Match: "*@xn--mnchen-3ya.example"}, // münchen, configured as an A-label
			{Match: "Équipe@example.org"},
		},
		Hold:               []string{"team@example.org", "*@[192.0.2.1]", "*@aliases.example"},
		RecipientDelimiter: "+",
	}
	l := ListsFor(cfg)
	const notList = ""
	tests := []struct {
		rcpt string
		want string // list name, or notList
		held bool   // held without a list (hold patterns)
	}{
		// case, brackets, whitespace, comments
		{"dev@lists.example.org", "dev", false},
		{"<dev@lists.example.org>", "dev", false},
		{"dev@LISTS.EXAMPLE.ORG", "dev", false},
		{"DEV@Lists.Example.Org", "dev", false},
		{" <dev@lists.example.org> ", "dev", false},
		{"<<dev@lists.example.org>>", "dev", false},
		{"dev@lists.example.org>", "dev", false},
		{"dev @ lists.example.org", "dev", false},
		{"dev(comment)@lists.example.org", "dev", false},
		{"dev@lists.example.org (comment (nested))", "dev", false},
		// trailing dot, source routes
		{"dev@lists.example.org.", "dev", false},
		{"@relay.example:dev@lists.example.org", "dev", false},
		{"<@a.example,@b.example:dev@lists.example.org>", "dev", false},
		// quoted local parts
		{`"dev"@lists.example.org`, "dev", false},
		{`"d\ev"@lists.example.org`, "dev", false},
		{`"STAFF"@example.org`, "STAFF", false},
		{`"st"."aff"@example.org`, notList, false}, // st.aff, another address
		{`"st\aff"@Example.ORG.`, "STAFF", false},
		// address extensions (recipient_delimiter +)
		{"staff+x@example.org", "STAFF", false},
		{"dev+x@lists.example.org", "dev", false},
		{"staff-x@example.org", notList, false}, // - is no delimiter here
		{"+staff@example.org", notList, false},  // nothing before the delimiter: not split
		{"dev-bounces+alice=example.com@lists.example.org", "dev", false},
		{"owner-dev+x@lists.example.org", "dev", false},
		// rewrites the MTA makes of the local part
		{"dev%lists.example.org@[127.0.0.1]", "dev", false},
		{"dev%lists.example.org@relay.example", "dev", false},
		{"dev%lists.example.org", "dev", false},
		{"lists.example.org!dev", "dev", false},
		{"lists.example.org!dev@[127.0.0.1]", "dev", false},
		{`"dev@lists.example.org"@[127.0.0.1]`, "dev", false},
		{`"staff@example.org"@relay.example`, "STAFF", false},
		{"a%b%staff@example.org", notList, false}, // a%b%staff is no list of example.org
		// UTF-8 and A-label domains, NFC
		{"dev@listes.exämple.fr", "dev", false},
		{"dev@LISTES.EXÄMPLE.FR", "dev", false},
		{"dev@listes.xn--exmple-cua.fr", "dev", false},
		{"dev@listes.exa\u0308mple.fr", "dev", false}, // NFD: a + combining diaeresis
		{"dev@münchen.example", "dev", false},
		{"dev@xn--mnchen-3ya.example", "dev", false},
		{"équipe@example.org", "équipe", false},
		{"E\u0301quipe@example.org", "équipe", false}, // NFD É
		// fail closed: a list domain, but no clean address
		{"@lists.example.org", Unparsed, false},
		{"dev@lists.example.org@[127.0.0.1]", Unparsed, false},
		{".dev@lists.example.org", Unparsed, false},
		{"dev.@lists.example.org", Unparsed, false},
		{"d..ev@lists.example.org", Unparsed, false},
		{`"dev@lists.example.org`, Unparsed, false},
		{"dev(@lists.example.org", Unparsed, false},
		{"dev@lists.example.org..", Unparsed, false},
		{"dev@lists.example.org, bob@example.net", Unparsed, false},
		{"a@b@staff@example.org", Unparsed, false},
		{"dev@\"lists.example.org\"", Unparsed, false},
		{"x\\y@listes.exämple.fr", Unparsed, false},
		// not lists
		{"dev@example.org", notList, false},
		{"dev@sub.lists.example.org", notList, false},
		{"dev@lists.example.org.evil.com", notList, false},
		{"dev@evil-lists.example.org.com", notList, false},
		{"dev", notList, false}, // no domain: the MTA appends its own; {rcpt_addr} shows it
		{"dev@[127.0.0.1]", notList, false},
		{"", notList, false},
		{"bob@example.net", notList, false},
		{"staffx@example.org", notList, false},
		// hold patterns: no list, but held
		{"team@example.org", notList, true},
		{"TEAM+x@example.org.", notList, true},
		{`"team"@example.org`, notList, true},
		{"dev@[192.0.2.1]", notList, true},
		{"team@example.org@", Unparsed, false}, // a list domain too (staff@)
		{"x@@aliases.example", notList, true},  // unparsed in a hold domain
		{"x@ALIASES.example", notList, true},
		{"dev@[192.0.2.2]", notList, false},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			name, ok := l.Match(tt.rcpt)
			if ok != (tt.want != notList) || name != tt.want {
				t.Errorf("Match(%q) = %q, %v; want %q", tt.rcpt, name, ok, tt.want)
			}
			if held := l.Held(tt.rcpt); tt.want == notList && held != tt.held {
				t.Errorf("Held(%q) = %v, want %v", tt.rcpt, held, tt.held)
			}
		})
	}
}

// TestListsNoDelimiter: without recipient_delimiter an extension is part
// of the address, as in a Postfix without one.
func TestListsNoDelimiter(t *testing.T) {
	l := NewLists([]config.ListPattern{{Match: "*@lists.example.org"}, {Match: "staff@example.org"}})
	for rcpt, want := range map[string]string{"dev+x@lists.example.org": "dev+x", "staff+x@example.org": ""} {
		if name, _ := l.Match(rcpt); name != want {
			t.Errorf("Match(%q) = %q, want %q", rcpt, name, want)
		}
	}
	d := newLists([]config.ListPattern{{Match: "*@lists.example.org"}, {Match: "staff@example.org"}}, nil, "-+")
	for rcpt, want := range map[string]string{"dev-x@lists.example.org": "dev", "staff+a-b@example.org": "staff",
		"staff-a+b@example.org": "staff", "dev-request@lists.example.org": "dev", "owner-dev@lists.example.org": "dev"} {
		if name, _ := d.Match(rcpt); name != want {
			t.Errorf("delimiters -+: Match(%q) = %q, want %q", rcpt, name, want)
		}
	}
}

// FuzzCanonical: reading a recipient never panics; its canonical address
// reads back as itself (idempotent); and a canonical address in a list
// domain, or named by an exact pattern, is always that list.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{"dev@lists.example.org.", "@relay.example:dev@lists.example.org", `"d\ev"@lists.example.org`,
		"dev%lists.example.org@[127.0.0.1]", "lists.example.org!dev", `"dev@lists.example.org"@[127.0.0.1]`,
		"dev@listes.xn--exmple-cua.fr", "dev(c)@LISTS.example.org", "<<dev@lists.example.org>>", "a%b!c@d", `"a\"b"@[IPv6:2001:DB8::1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rcpt string) {
		addrs, _ := address.Parse(rcpt)
		if len(addrs) == 0 {
			return
		}
		a := addrs[0]
		again, _ := address.Parse(a.String())
		if len(again) == 0 || again[0] != a {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v", rcpt, a, a.String(), again)
		}
		if a.Domain == "" {
			return
		}
		l := NewLists([]config.ListPattern{{Match: "*@" + a.Domain}})
		if _, ok := l.Match(a.String()); !ok {
			t.Fatalf("%q (from %q) is not a list of *@%s", a.String(), rcpt, a.Domain)
		}
		if _, ok := l.Match(rcpt); !ok {
			t.Fatalf("%q (%q) is not a list of *@%s", rcpt, a.String(), a.Domain)
		}
		if address.Valid(a.Local) {
			e := NewLists([]config.ListPattern{{Match: a.String(), Name: "L"}})
			if name, ok := e.Match(rcpt); !ok || name != "L" {
				t.Fatalf("%q (%q) does not match the exact pattern %q: %q, %v", rcpt, a.String(), a.String(), name, ok)
			}
		}
	})
}
