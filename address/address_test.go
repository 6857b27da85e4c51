package address

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want []string // canonical addresses, first the one delivered to as written
		bad  bool     // ErrSyntax
	}{
		{"<Dev@Lists.Example.Org.>", []string{"dev@lists.example.org"}, false},
		{"@a,@b:dev@x.example", []string{"dev@x.example"}, false},
		{`"d\ev"@x.example`, []string{"dev@x.example"}, false},
		{`"a b"@x.example`, []string{`"a b"@x.example`}, false},
		{"dev@[IPv6:2001:DB8:0::1]", []string{"dev@[ipv6:2001:db8::1]"}, false},
		{"dev@[127.0.0.1]", []string{"dev@[127.0.0.1]"}, false},
		{"dev@[300.0.0.1]", nil, true},
		{"dev@[IPv6:127.0.0.1]", nil, true},
		{"u%d.example@[127.0.0.1]", []string{"u%d.example@[127.0.0.1]", "u@d.example"}, false},
		{"d.example!u", []string{"d.example!u", "u@d.example"}, false},
		{`"u@d.example"@h.example`, []string{`"u@d.example"@h.example`, "u@d.example"}, false},
		{"dev@bücher.example", []string{"dev@xn--bcher-kva.example"}, false},
		{"dev@XN--BCHER-KVA.example", []string{"dev@xn--bcher-kva.example"}, false},
		{"dev", []string{"dev"}, false},
		{"dev@", nil, true},
		{"a@b@c.example", nil, true},
		{"dev@x..example", nil, true},
		{"dev@x.example..", nil, true},
		{"de\x00v@x.example", nil, true},
		{"dev@x.exa\xffmple", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			addrs, err := Parse(tt.in)
			var got []string
			for _, a := range addrs {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) || errors.Is(err, ErrSyntax) != tt.bad {
				t.Errorf("Parse(%q) = %q, %v; want %q (syntax error: %v)", tt.in, got, err, tt.want, tt.bad)
			}
		})
	}
}

// TestStripExtension follows postconf(5) recipient_delimiter: each
// character is a delimiter; the extension starts at the first of any.
func TestStripExtension(t *testing.T) {
	for _, tt := range []struct{ local, delims, want string }{
		{"dev+x", "+", "dev"}, {"dev+x", "", "dev+x"}, {"dev-x+y", "+-", "dev"}, {"dev+x-y", "-+", "dev"},
		{"+dev", "+", "+dev"}, {"dev", "+", "dev"}, {"dev+", "+", "dev"},
	} {
		if got := StripExtension(tt.local, tt.delims); got != tt.want {
			t.Errorf("StripExtension(%q, %q) = %q, want %q", tt.local, tt.delims, got, tt.want)
		}
	}
}

// slowDomain is Domain without its plain-domain shortcut: the IDNA round
// trip that every domain took before it.
func slowDomain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	u, err := idnaProfile.ToUnicode(d)
	if err != nil {
		return "", err
	}
	a, err := idnaProfile.ToASCII(u)
	if err != nil || a == "" || strings.HasPrefix(a, ".") || strings.HasSuffix(a, ".") || strings.Contains(a, "..") {
		return "", errors.New("rejected")
	}
	for _, r := range a {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return "", errors.New("rejected")
		}
	}
	return a, nil
}

// TestPlainDomainIsIDNA: whatever plainDomain answers, the IDNA round trip
// answers the same, over every string of up to 5 characters from the
// characters that matter and over long labels.
func TestPlainDomainIsIDNA(t *testing.T) {
	alphabet := []byte("aZ9-._")
	var check func(prefix []byte)
	n := 0
	check = func(d []byte) {
		if got, ok := plainDomain(string(d)); ok {
			n++
			if want, err := slowDomain(string(d)); err != nil || got != want {
				t.Errorf("plainDomain(%q) = %q; the IDNA round trip: %q, %v", d, got, want, err)
			}
		}
		if len(d) == 5 {
			return
		}
		for _, c := range alphabet {
			check(append(d, c))
		}
	}
	check(nil)
	for _, d := range []string{strings.Repeat("a", 63) + ".org", strings.Repeat("a", 64) + ".org", "xn--nxasmq6b.com", "ab--cd.org",
		"Lists.Example.ORG", "a-b.c-d.e", "-a.org", "a-.org", strings.Repeat("abcdefghi.", 30) + "org"} {
		got, ok := plainDomain(d)
		want, err := slowDomain(d)
		if ok && (err != nil || got != want) {
			t.Errorf("plainDomain(%q) = %q; the IDNA round trip: %q, %v", d, got, want, err)
		}
		if !ok && strings.HasPrefix(d, "Lists") {
			t.Errorf("plainDomain(%q) took the long way", d)
		}
	}
	if n < 1000 {
		t.Errorf("only %d plain domains checked", n)
	}
}

// FuzzDomain: Domain never panics, and its shortcut agrees with the IDNA
// round trip on every input it takes.
func FuzzDomain(f *testing.F) {
	for _, s := range []string{"example.org", "Lists.Example.ORG.", "xn--bcher-kva.example", "bücher.example", "[192.0.2.1]", "a..b", "-a.org", "a_b.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, d string) {
		_, _ = Domain(d)
		if got, ok := plainDomain(d); ok {
			if want, err := slowDomain(d); err != nil || got != want {
				t.Errorf("plainDomain(%q) = %q; the IDNA round trip: %q, %v", d, got, want, err)
			}
		}
	})
}

// BenchmarkParseRcpt: one RCPT TO address, as avmilter reads every one.
func BenchmarkParseRcpt(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("<Dev@Lists.Example.org>"); err != nil {
			b.Fatal(err)
		}
	}
}
