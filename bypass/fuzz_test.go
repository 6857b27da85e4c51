package bypass

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParse checks that any bytes either parse into a list whose every
// entry parses again on its own, or fail with an *Error whose bad lines are
// real lines of the input, and that Match never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte("exa mple.org\n192.0.2.7/24\nauth:\n"))
	f.Add([]byte("\uFEFF*@*.example.org # c\r\n::ffff:10.0.0.0/104\n"))
	msgs := []Message{
		{Sender: "alice@example.org", Client: netip.MustParseAddr("192.0.2.7"), AuthUser: "bob", EnvelopeTrusted: true},
		{Sender: "x@a.b.example.org", Client: netip.MustParseAddr("::ffff:198.51.100.1"), EnvelopeTrusted: true},
		{Sender: "x@a.b.example.org"},
		{Sender: "", Client: netip.MustParseAddr("2001:db8::1")},
		{Sender: "@.", AuthUser: "\x00"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz", bytes.NewReader(data))
		if err != nil {
			if l != nil {
				t.Fatal("list and error")
			}
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Lines) == 0 {
				t.Fatalf("error %T %v is not an *Error with lines", err, err)
			}
			nlines := bytes.Count(data, []byte("\n")) + 1
			for _, le := range pe.Lines {
				if le.Line < 1 || le.Line > nlines {
					t.Fatalf("bad line %d of %d", le.Line, nlines)
				}
			}
			return
		}
		if l == nil {
			t.Fatal("nil list without error")
		}
		if l.Len() > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d entries from %d lines", l.Len(), bytes.Count(data, []byte("\n"))+1)
		}
		for _, m := range msgs {
			l.Match(m)
		}
		each := func(m map[string]Entry) {
			for _, e := range m {
				one, err := Parse("entry", strings.NewReader(e.Text))
				if err != nil || one.Len() != 1 {
					t.Fatalf("entry %q from line %d does not parse alone: %v", e.Text, e.Line, err)
				}
			}
		}
		each(l.auth)
		each(l.addrs)
		each(l.domains)
		each(l.subdomains)
	})
}
