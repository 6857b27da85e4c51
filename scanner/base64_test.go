package scanner

import (
	"bytes"
	"encoding/base64"
	"io"
	"testing"
	"testing/iotest"
)

// referenceBase64 is how the walk decoded before base64Reader: drop what is
// not in the alphabet, then base64.NewDecoder. base64Reader must agree.
func referenceBase64(r io.Reader) ([]byte, error) {
	filtered, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	clean := filtered[:0]
	for _, c := range filtered {
		if base64Alphabet[c] {
			clean = append(clean, c)
		}
	}
	return io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(clean)))
}

// checkBase64: on a well-formed body base64Reader gives exactly what
// the reference gives; on a malformed one both fail, and base64Reader gives
// what comes before the first padding quantum (the reference's streaming
// decoder stops at a point that depends on its 1 KiB reads).
func checkBase64(t *testing.T, in []byte) {
	t.Helper()
	want, wantErr := referenceBase64(bytes.NewReader(in))
	for name, r := range map[string]io.Reader{"whole": bytes.NewReader(in), "byte by byte": iotest.OneByteReader(bytes.NewReader(in))} {
		got, err := io.ReadAll(newBase64Reader(r))
		switch {
		case wantErr == nil && (err != nil || !bytes.Equal(got, want)):
			t.Errorf("%s %.60q: got %d bytes, %v; want %d bytes", name, in, len(got), err, len(want))
		case wantErr != nil && err == nil:
			t.Errorf("%s %.60q: decoded %d bytes without an error; the reference says %v", name, in, len(got), wantErr)
		case wantErr != nil && !bytes.HasPrefix(got, upToPadding(in)) && !bytes.HasPrefix(upToPadding(in), got):
			t.Errorf("%s %.60q: %d bytes that are not the body up to its padding", name, in, len(got))
		}
	}
}

// upToPadding decodes the filtered body up to its first padding quantum.
func upToPadding(in []byte) []byte {
	var clean []byte
	for _, c := range in {
		if base64Alphabet[c] {
			clean = append(clean, c)
		}
	}
	end := len(clean) / 4 * 4
	if i := bytes.IndexByte(clean, '='); i >= 0 && i/4*4+4 <= len(clean) {
		end = i/4*4 + 4
	}
	out, _ := base64.StdEncoding.DecodeString(string(clean[:end]))
	return out
}

func TestBase64Reader(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789"), 20000)
	enc := base64.StdEncoding.EncodeToString(long)
	var lines bytes.Buffer
	for s := enc; len(s) > 0; {
		n := min(len(s), 76)
		lines.WriteString(s[:n] + "\r\n")
		s = s[n:]
	}
	for _, in := range []string{
		"", "QUJD", "QUJD\r\n", "QUI=", "QQ==", "QQ", "QQ=", "Q", "QUJDRA",
		"QU JD\tRA==", "!!QU*JD~~", "QQ==QUJD", "QUJD====", "====",
		lines.String(),
		lines.String() + "QQ", // truncated at the end
		lines.String()[:100000] + "==" + lines.String()[100000:], // padding in the middle of a block
		enc[:base64Block-2] + "==" + enc[base64Block-2:],         // padding at a block edge
	} {
		checkBase64(t, []byte(in))
	}
}

func FuzzBase64Reader(f *testing.F) {
	for _, s := range []string{"QUJD", "QQ==QUJD", "QU JD\r\nRA==", "Q", "=QUJD"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkBase64(t, in) })
}
