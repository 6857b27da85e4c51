package scanner

import (
	"bytes"
	"context"
	"testing"

	"github.com/avstation/avstation/verdict"
)

// FuzzScan feeds arbitrary bytes to the MIME walk. Whatever the input, the
// scan must end with a known status and never panic; seeds are in
// testdata/fuzz/FuzzScan.
func FuzzScan(f *testing.F) {
	f.Add([]byte(crlf(multipart(textPart, attachment("a.exe", "EVIL")))))
	f.Fuzz(func(t *testing.T, msg []byte) {
		v, err := New(Options{Name: "fuzz", MaxDepth: 8, MaxParts: 64}, &fakeEngine{}).
			Scan(context.Background(), bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if !verdict.Known(v.Status) {
			t.Fatalf("status %q", v.Status)
		}
		if bytes.Contains(msg, []byte("EVIL")) && v.Status != verdict.Infected {
			t.Fatalf("EVIL in the raw message but status %q", v.Status)
		}
	})
}
