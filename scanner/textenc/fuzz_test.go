package textenc

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/textenc/textenctest"
)

// FuzzFinder: whatever the text, the finder ends, never panics, and a
// block never decodes to more than the text holds (BinHex's run-length
// encoding aside, which is bounded by binhexRLE). Seeds are in
// testdata/fuzz/FuzzFinder.
func FuzzFinder(f *testing.F) {
	f.Add("begin 644 x\n" + pyUUBacktick + "`\nend\n")
	f.Add("begin-base64 644 h\n" + b64lines(hello) + "====\n")
	f.Add("=ybegin line=128 size=3 name=y\n=}=M=J\n=yend\n")
	f.Add("(This file must be converted with BinHex 4.0)\n" + textenctest.BinHex("a.exe", "MZ"+strings.Repeat("A", 40), true))
	f.Fuzz(func(t *testing.T, text string) {
		fd := NewFinder(strings.NewReader(text))
		var plain, bh int
		for range len(text) + 1 {
			b, r, err := fd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if b.Encoding == BinHex {
				bh += int(n)
			} else {
				plain += int(n)
			}
		}
		if plain > len(text) || bh > binhexRLE*len(text) {
			t.Fatalf("decoded %d (+%d BinHex) bytes from %d", plain, bh, len(text))
		}
		if _, _, err := fd.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("Next after the end: %v", err)
		}
	})
}
