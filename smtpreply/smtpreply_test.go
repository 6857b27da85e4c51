package smtpreply

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	tests := []struct {
		text string
		max  int
		want []string
	}{
		{"short reply", 0, []string{"short reply"}},
		{"", 0, []string{""}},
		{"one two three four", 9, []string{"one two", "three", "four"}},
		{"a  spaced\ttext", 0, []string{"a spaced text"}},
		{"x abcdefghij y", 4, []string{"x", "abcd", "efgh", "ij y"}},
	}
	for _, tt := range tests {
		got := Reply{Text: tt.text}.Lines(tt.max)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("Lines(%q, %d) = %q, want %q", tt.text, tt.max, got, tt.want)
		}
	}
	long := Reply{Code: 550, Enhanced: "5.7.1", Text: strings.Repeat("word ", 300)}
	for i, l := range long.Lines(0) {
		if len(l) > MaxLine {
			t.Errorf("line %d is %d octets", i, len(l))
		}
	}
	if r := long.Reason(); !strings.HasPrefix(r, "5.7.1 word") || strings.Count(r, "\n") != len(long.Lines(0))-1 {
		t.Errorf("Reason() = %q", r)
	}
}

func TestErrorChain(t *testing.T) {
	r := LocalError.Because(fmt.Errorf("quarantine: %w", fs.ErrPermission))
	wrapped := fmt.Errorf("applying: %w", r)
	got, ok := As(wrapped)
	if !ok || got.Code != 451 || got.Enhanced != "4.3.0" || !errors.Is(wrapped, fs.ErrPermission) {
		t.Errorf("As(%v) = %v, %v", wrapped, got, ok)
	}
	if LocalError.Cause != nil {
		t.Error("Because changed the named reply")
	}
	if !strings.Contains(r.Error(), "451 4.3.0 Temporary failure") || !strings.Contains(r.Error(), "permission denied") {
		t.Errorf("Error() = %q", r.Error())
	}
	if r.String() != "451 4.3.0 Temporary failure; please try again later." {
		t.Errorf("String() = %q: the public text must not carry the cause", r.String())
	}
}

func TestCheckText(t *testing.T) {
	for s, ok := range map[string]bool{
		"Rejected: %%VirusName%%": true,
		"line\r\nbreak":           false,
		"line\nbreak":             false,
		"Umlaut ü":                false,
		"tab\t":                   false,
	} {
		if err := CheckText(s); (err == nil) != ok {
			t.Errorf("CheckText(%q) = %v", s, err)
		}
	}
}
