package scanner

import (
	"archive/zip"
	"bytes"
	"context"
	"testing"

	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// crcMadeWrong flips the low byte of every CRC-32 of a zip, in the local
// headers and the central directory. ZipCrypto's check byte is the CRC's
// high byte, so the right password still passes it; unzip and 7-Zip
// extract such a member with a warning.
func crcMadeWrong(z []byte) []byte {
	z = bytes.Clone(z)
	for i := 0; i+20 < len(z); i++ {
		switch {
		case bytes.HasPrefix(z[i:], []byte("PK\x03\x04")):
			z[i+14] ^= 0xff
		case bytes.HasPrefix(z[i:], []byte("PK\x01\x02")):
			z[i+16] ^= 0xff
		}
	}
	return z
}

// TestAttackChecksumMadeWrong: a member whose checksum does not match is
// still scanned as far as it reads. Before the fix, a zip whose CRC was
// made wrong hid its member from every engine that does not unpack mail
// itself (an external scanner; the walk recorded the read error and
// skipped the member: unscannable, tagged and delivered by default), and
// an encrypted one whose password is in the message passed for merely
// encrypted (tagged and delivered by default; clamd cannot decrypt):
// the password failed the CRC, so the walk took it for a wrong one.
func TestAttackChecksumMadeWrong(t *testing.T) {
	eicar := string(harness.EICAR())
	var plain bytes.Buffer
	w := zip.NewWriter(&plain)
	f, _ := w.Create("e.com")
	f.Write([]byte("EVIL inside")) // fakeEngine's virus
	w.Close()

	t.Run("plain zip, an engine that does not unpack", func(t *testing.T) {
		msg := multipart("Content-Type: text/plain\n\nhello", attachment("x.zip", string(crcMadeWrong(plain.Bytes()))))
		v := scan(t, Options{}, &fakeEngine{}, msg)
		if f, ok := v.First(verdict.Infected); !ok || f.Path != "2/x.zip/e.com" {
			t.Errorf("status %s, findings %+v; want infected at 2/x.zip/e.com", v.Status, v.Findings)
		}
	})
	t.Run("encrypted zip, password in the text, clamd", func(t *testing.T) {
		client := startClamd(t)
		msg := []byte(crlf(multipart("Content-Type: text/plain\n\nthe password is s3cret",
			attachment("x.zip", string(crcMadeWrong(zipCrypto(t, "e.com", eicar, "s3cret")))))))
		if res, err := client.Scan(context.Background(), bytes.NewReader(msg)); err != nil || res.Found {
			t.Fatalf("clamd sent the message: %+v, %v; want it to see nothing (it cannot decrypt)", res, err)
		}
		v, err := New(Options{Name: "test", TryPasswords: true}, Clamd(client)).Scan(context.Background(), bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatal(err)
		}
		if f, ok := v.First(verdict.Infected); !ok || f.Path != "2/x.zip/e.com" {
			t.Errorf("status %s, findings %+v; want infected at 2/x.zip/e.com", v.Status, v.Findings)
		}
	})
}
