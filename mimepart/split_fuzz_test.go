package mimepart

import (
	"strings"
	"testing"
)

// FuzzSplit: Split takes a finding's path apart without losing or adding
// anything (joined again, the pieces are the path), the part is part
// numbers only, and what is inside starts with a name that is not one.
// Seeds are in testdata/fuzz/FuzzSplit.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"2/invoice.zip/inner.7z/doc.exe", "", "0", "1", "2/1", "a.zip", "01/x", "2//x", "/", "3/../../etc/passwd", "2/1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		part, inside := Split(path)
		if Part(path) != part {
			t.Fatalf("Part(%q) = %q, Split says %q", path, Part(path), part)
		}
		if part != "" {
			for _, seg := range strings.Split(part, "/") {
				if !isPartNumber(seg) {
					t.Fatalf("%q: part %q has segment %q", path, part, seg)
				}
			}
		}
		if len(inside) > 0 && isPartNumber(inside[0]) {
			t.Fatalf("%q: inside %q starts with a part number", path, inside)
		}
		joined := strings.Join(append([]string{part}, inside...), "/")
		if part == "" {
			joined = strings.Join(inside, "/")
		}
		whole := path == "" || path == "0"
		if whole && (part != "" || inside != nil) {
			t.Fatalf("%q is the whole message, got %q %q", path, part, inside)
		}
		if !whole && joined != path {
			t.Fatalf("%q split into %q %q, which join to %q", path, part, inside, joined)
		}
	})
}
