package notify

import "testing"

func TestBypassed(t *testing.T) {
	tests := []struct {
		addr     string
		patterns []string
		want     bool
	}{
		{"alice@example.org", []string{"*@example.org"}, true},
		{"Alice@EXAMPLE.org", []string{"*@example.ORG"}, true},
		{"<alice@example.org>", []string{"*@example.org"}, true},
		{"alice@sub.example.org", []string{"*@example.org"}, false},
		{"alice@sub.example.org", []string{"*.example.org"}, true},
		{"noreply@anywhere.net", []string{"noreply@*"}, true},
		{"noreply-x@anywhere.net", []string{"noreply@*"}, false},
		{"anyone@anywhere", []string{"*"}, true},
		{"", []string{"*"}, true},
		{"bob@example.org", nil, false},
		{"bob@example.org", []string{"alice@example.org", "bob@example.org"}, true},
		{"bob@example.org", []string{"[", "b?b@example.org"}, true}, // a bad pattern matches nothing, the rest still count
		{"bob@example.org", []string{"["}, false},
	}
	for _, tt := range tests {
		if got := Bypassed(tt.addr, tt.patterns); got != tt.want {
			t.Errorf("Bypassed(%q, %q) = %v, want %v", tt.addr, tt.patterns, got, tt.want)
		}
	}
}

func TestValidPattern(t *testing.T) {
	if err := ValidPattern("*@example.org"); err != nil {
		t.Errorf("ValidPattern(*@example.org) = %v", err)
	}
	if err := ValidPattern("[a-"); err == nil {
		t.Errorf("ValidPattern([a-) = nil, want an error")
	}
}
