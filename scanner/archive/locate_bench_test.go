package archive

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// BenchmarkLocateNotAnArchive: the cost of asking whether a 1 MiB part
// that is no archive is one, as the scanner asks of every part.
func BenchmarkLocateNotAnArchive(b *testing.B) {
	data := make([]byte, 1<<20)
	rand.Read(data)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Locate(bytes.NewReader(data), int64(len(data)), "photo.jpg"); ok {
			b.Fatal("random bytes located as an archive")
		}
	}
}

// TestLastIndex: lastIndex is bytes.LastIndex, overlapping matches too.
func TestLastIndex(t *testing.T) {
	for _, tt := range []struct{ b, sep string }{
		{"", "PK"}, {"PK", "PK"}, {"xPKyPKz", "PK"}, {"PPPP", "PP"}, {"abc", "PK"}, {"PK\x05\x06PK\x05\x06", "PK\x05\x06"},
	} {
		if got, want := lastIndex([]byte(tt.b), []byte(tt.sep)), bytes.LastIndex([]byte(tt.b), []byte(tt.sep)); got != want {
			t.Errorf("lastIndex(%q, %q) = %d, want %d", tt.b, tt.sep, got, want)
		}
	}
}
