package bypass

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

const sample = `# avstation bypass file
alice@example.org
*@partner.example        # the partner's relays scan already
*@*.lists.example.net
192.0.2.7
198.51.100.0/24
2001:db8::1
2001:db8:aa::/48
auth:bob
Carol@Example.COM
*@Upper.Example
`

func mustParse(t *testing.T, text string) *List {
	t.Helper()
	l, err := Parse("bypass.txt", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return l
}

func TestMatch(t *testing.T) {
	l := mustParse(t, sample)
	ip := netip.MustParseAddr
	tests := []struct {
		name  string
		msg   Message
		entry string // "" for no match
	}{
		{"address", Message{Sender: "alice@example.org"}, "alice@example.org (line 2)"},
		{"address upper case", Message{Sender: "ALICE@Example.ORG"}, "alice@example.org (line 2)"},
		{"address written in upper case", Message{Sender: "carol@example.com"}, "Carol@Example.COM (line 10)"},
		{"address in angle brackets", Message{Sender: "<alice@example.org>"}, "alice@example.org (line 2)"},
		{"address with trailing dot", Message{Sender: "alice@example.org."}, "alice@example.org (line 2)"},
		{"other local part", Message{Sender: "mallory@example.org"}, ""},
		{"address is not a domain entry", Message{Sender: "alice@sub.example.org"}, ""},
		{"domain", Message{Sender: "anyone@partner.example"}, "*@partner.example (line 3)"},
		{"domain upper case", Message{Sender: "Anyone@PARTNER.Example"}, "*@partner.example (line 3)"},
		{"domain written in upper case", Message{Sender: "x@upper.example"}, "*@Upper.Example (line 11)"},
		{"domain is exact, not subdomains", Message{Sender: "x@mx.partner.example"}, ""},
		{"domain suffix is not the domain", Message{Sender: "x@notpartner.example"}, ""},
		{"subdomain", Message{Sender: "x@a.lists.example.net"}, "*@*.lists.example.net (line 4)"},
		{"deeper subdomain", Message{Sender: "x@b.a.LISTS.example.net"}, "*@*.lists.example.net (line 4)"},
		{"subdomain wildcard not bare domain", Message{Sender: "x@lists.example.net"}, ""},
		{"subdomain wildcard not parent", Message{Sender: "x@example.net"}, ""},
		{"subdomain label suffix", Message{Sender: "x@evillists.example.net"}, ""},
		{"null sender", Message{Sender: ""}, ""},
		{"null sender in brackets", Message{Sender: "<>"}, ""},
		{"bare local name", Message{Sender: "postmaster"}, ""},
		{"ipv4", Message{Client: ip("192.0.2.7")}, "192.0.2.7 (line 5)"},
		{"ipv4 other", Message{Client: ip("192.0.2.8")}, ""},
		{"ipv4 mapped", Message{Client: ip("::ffff:192.0.2.7")}, "192.0.2.7 (line 5)"},
		{"ipv4 range", Message{Client: ip("198.51.100.200")}, "198.51.100.0/24 (line 6)"},
		{"ipv4 mapped range", Message{Client: ip("::ffff:198.51.100.1")}, "198.51.100.0/24 (line 6)"},
		{"ipv4 outside range", Message{Client: ip("198.51.101.1")}, ""},
		{"ipv6", Message{Client: ip("2001:db8::1")}, "2001:db8::1 (line 7)"},
		{"ipv6 with zone", Message{Client: ip("2001:db8::1%eth0")}, "2001:db8::1 (line 7)"},
		{"ipv6 other", Message{Client: ip("2001:db8::2")}, ""},
		{"ipv6 range", Message{Client: ip("2001:db8:aa:1::9")}, "2001:db8:aa::/48 (line 8)"},
		{"ipv6 outside range", Message{Client: ip("2001:db8:ab::1")}, ""},
		{"unknown client", Message{}, ""},
		{"auth user", Message{AuthUser: "bob"}, "auth:bob (line 9)"},
		{"auth user is case-sensitive", Message{AuthUser: "Bob"}, ""},
		{"auth user is not a sender", Message{Sender: "bob@example.org"}, ""},
		{"auth wins over client", Message{AuthUser: "bob", Client: ip("192.0.2.7")}, "auth:bob (line 9)"},
		{"sender wins over client", Message{Sender: "x@partner.example", Client: ip("192.0.2.7")}, "*@partner.example (line 3)"},
		{"client when sender does not match", Message{Sender: "x@elsewhere.example", Client: ip("192.0.2.7")}, "192.0.2.7 (line 5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg
			m.EnvelopeTrusted = true // sender entries in play; see TestMatchUntrustedEnvelope
			got, ok := l.Match(m)
			if got != tt.entry || ok != (tt.entry != "") {
				t.Errorf("Match(%+v) = %q, %v; want %q", m, got, ok, tt.entry)
			}
		})
	}
}

// An envelope nobody vouches for matches no sender entry: MAIL FROM is
// whatever an unauthenticated client says. Client and auth: entries do
// not depend on it.
func TestMatchUntrustedEnvelope(t *testing.T) {
	l := mustParse(t, sample)
	ip := netip.MustParseAddr
	tests := []struct {
		name  string
		msg   Message
		entry string
	}{
		{"address", Message{Sender: "alice@example.org"}, ""},
		{"domain", Message{Sender: "anyone@partner.example"}, ""},
		{"subdomain", Message{Sender: "x@a.lists.example.net"}, ""},
		{"sender entry does not hide the client's", Message{Sender: "x@partner.example", Client: ip("192.0.2.7")}, "192.0.2.7 (line 5)"},
		{"client range", Message{Sender: "alice@example.org", Client: ip("198.51.100.1")}, "198.51.100.0/24 (line 6)"},
		{"auth user", Message{Sender: "alice@example.org", AuthUser: "bob"}, "auth:bob (line 9)"},
		{"trusted", Message{Sender: "alice@example.org", EnvelopeTrusted: true}, "alice@example.org (line 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := l.Match(tt.msg)
			if got != tt.entry || ok != (tt.entry != "") {
				t.Errorf("Match(%+v) = %q, %v; want %q", tt.msg, got, ok, tt.entry)
			}
		})
	}
}

func TestMatchLongestRange(t *testing.T) {
	l := mustParse(t, "10.0.0.0/8\n10.1.0.0/16\n10.1.2.0/24\n::ffff:172.16.0.0/108\n")
	tests := []struct {
		client, entry string
	}{
		{"10.1.2.3", "10.1.2.0/24 (line 3)"},
		{"10.1.3.3", "10.1.0.0/16 (line 2)"},
		{"10.2.0.1", "10.0.0.0/8 (line 1)"},
		{"11.0.0.1", ""},
		{"172.16.9.9", "::ffff:172.16.0.0/108 (line 4)"}, // a mapped range is an IPv4 /12
		{"172.32.0.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.client, func(t *testing.T) {
			got, _ := l.Match(Message{Client: netip.MustParseAddr(tt.client)})
			if got != tt.entry {
				t.Errorf("got %q, want %q", got, tt.entry)
			}
		})
	}
}

func TestMatchEntry(t *testing.T) {
	l := mustParse(t, "\n\n  *@example.org   # trailing comment\n")
	e, ok := l.MatchEntry(Message{Sender: "a@example.org", EnvelopeTrusted: true})
	if !ok || e != (Entry{Text: "*@example.org", Line: 3}) {
		t.Errorf("MatchEntry = %+v, %v", e, ok)
	}
	if got := "bypass: " + e.String(); got != "bypass: *@example.org (line 3)" {
		t.Errorf("log line %q", got)
	}
}

func TestEmptyAndNil(t *testing.T) {
	var nilList *List
	for name, l := range map[string]*List{"nil": nilList, "zero": {}, "empty": mustParse(t, "# nothing\n")} {
		t.Run(name, func(t *testing.T) {
			if e, ok := l.Match(Message{Sender: "a@b.example", Client: netip.MustParseAddr("192.0.2.1"), AuthUser: "u", EnvelopeTrusted: true}); ok {
				t.Errorf("matched %q", e)
			}
			if l.Len() != 0 {
				t.Errorf("Len = %d", l.Len())
			}
		})
	}
}

// A list of tens of thousands of entries: lookups stay map lookups.
func BenchmarkMatchLarge(b *testing.B) {
	var sb strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&sb, "user%d@example%d.org\n*@domain%d.example\n10.%d.%d.0/24\n", i, i%100, i, i/256%256, i%256)
	}
	l, err := Parse("large", strings.NewReader(sb.String()))
	if err != nil {
		b.Fatal(err)
	}
	m := Message{Sender: "someone@a.b.c.nowhere.example", Client: netip.MustParseAddr("2001:db8::1"), EnvelopeTrusted: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := l.Match(m); ok {
			b.Fatal("matched")
		}
	}
}
