package milter

import (
	"testing"

	"github.com/avstation/avstation/config"
)

func TestListsMatch(t *testing.T) {
	l := NewLists([]config.ListPattern{
		{Match: "*@lists.example.org"},
		{Match: "Staff@Example.org", Name: "STAFF"},
		{Match: "announce@lists.example.org", Name: "ANNOUNCE-L"},
	})
	tests := []struct {
		rcpt string
		name string
		ok   bool
	}{
		{"dev@lists.example.org", "dev", true},
		{"<Dev@LISTS.example.org>", "dev", true},
		{"announce@lists.example.org", "ANNOUNCE-L", true}, // exact beats domain
		{"staff@example.org", "STAFF", true},
		{"other@example.org", "", false},
		{"dev@sub.lists.example.org", "", false},
		{"lists.example.org", "", false},
		{"@lists.example.org", "", false},
		{"", "", false},
		{"dev@lists.example.org.evil.com", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.rcpt, func(t *testing.T) {
			name, ok := l.Match(tt.rcpt)
			if name != tt.name || ok != tt.ok {
				t.Errorf("Match(%q) = %q, %v; want %q, %v", tt.rcpt, name, ok, tt.name, tt.ok)
			}
		})
	}
}
