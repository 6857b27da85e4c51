package mimepart

import (
	"reflect"
	"testing"

	"github.com/emersion/go-message/textproto"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		path, part string
		inside     []string
	}{
		{"", "", nil},
		{"0", "", nil},
		{"1", "1", nil},
		{"2/1", "2/1", nil},
		{"2/invoice.zip/doc.exe", "2", []string{"invoice.zip", "doc.exe"}},
		{"3/1/a.7z/b.zip/c.exe", "3/1", []string{"a.7z", "b.zip", "c.exe"}},
		{"2/02/x", "2", []string{"02", "x"}},
		{"(zip)/a.exe", "", []string{"(zip)", "a.exe"}},
	}
	for _, tt := range tests {
		part, inside := Split(tt.path)
		if part != tt.part || !reflect.DeepEqual(inside, tt.inside) {
			t.Errorf("Split(%q) = %q, %q; want %q, %q", tt.path, part, inside, tt.part, tt.inside)
		}
	}
}

func TestContentType(t *testing.T) {
	for v, want := range map[string]string{"": "text/plain", "Application/ZIP; name=a.zip": "application/zip", ";;;": "text/plain"} {
		var h textproto.Header
		if v != "" {
			h.Set("Content-Type", v)
		}
		if got, params := ContentType(h); got != want || params == nil {
			t.Errorf("ContentType(%q) = %q, %v", v, got, params)
		}
	}
}
