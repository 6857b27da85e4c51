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
