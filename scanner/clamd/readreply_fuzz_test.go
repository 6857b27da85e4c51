package clamd

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// FuzzReadReply checks the byte-level reply reader against an independent
// reading of the same bytes: the reply is everything before the first NUL
// or newline (less one "\r" before it) when that terminator is within
// maxReply bytes; no terminator is an error, and so is a longer reply.
// The answer is the same whether clamd's bytes come at once or one at a
// time. Seeds are in testdata/fuzz/FuzzReadReply.
func FuzzReadReply(f *testing.F) {
	f.Add([]byte("stream: OK\x00"))
	f.Add([]byte("stream: Eicar-Test-Signature FOUND\r\n"))
	f.Add([]byte("stream: OK"))
	f.Add([]byte(""))
	f.Add(append(bytes.Repeat([]byte("x"), maxReply-1), 0))
	f.Add(append(bytes.Repeat([]byte("x"), maxReply), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantOK := "", false
		if i := bytes.IndexAny(data, "\x00\n"); i >= 0 && i < maxReply {
			want, wantOK = strings.TrimSuffix(string(data[:i]), "\r"), true
		}
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(data),
			"one byte": iotest.OneByteReader(bytes.NewReader(data)),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
		} {
			got, err := readReply(r)
			if wantOK {
				if err != nil || got != want {
					t.Fatalf("%s: readReply = %q, %v; want %q", name, got, err, want)
				}
				continue
			}
			if err == nil {
				t.Fatalf("%s: readReply = %q without a terminator in the first %d bytes", name, got, maxReply)
			}
			if len(data) == 0 && !errors.Is(err, errNoReply) {
				t.Fatalf("%s: no bytes: %v, want errNoReply", name, err)
			}
		}
	})
}
