package address

import (
	"errors"
	"slices"
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
