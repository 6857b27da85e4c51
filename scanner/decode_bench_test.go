package scanner

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"testing"
)

// BenchmarkDecodeBase64: decoding a 1 MiB base64 attachment body as the
// walk does (76-character lines, CRLF).
func BenchmarkDecodeBase64(b *testing.B) {
	raw := make([]byte, 1<<20)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var body bytes.Buffer
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n")
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	for b.Loop() {
		n, err := io.Copy(io.Discard, decoder("base64", bytes.NewReader(body.Bytes())))
		if err != nil || n != int64(len(raw)) {
			b.Fatal(n, err)
		}
	}
}
