package scanner

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"testing"

	"github.com/avstation/avstation/verdict"
)

// discardEngine reads every stream to the end and finds nothing; it
// unpacks mail when unpacks is set, as clamd does.
type discardEngine struct{ unpacks bool }

func (e discardEngine) Name() string      { return "discard" }
func (e discardEngine) UnpacksMail() bool { return e.unpacks }
func (e discardEngine) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	_, err := io.Copy(io.Discard, r)
	return Detection{}, err
}
func (e discardEngine) Version(ctx context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "discard", Version: "1", SignatureVersion: "1"}, nil
}

// benchZipMessage is make bench's zip workload: a text part and a zip of
// four stored members of random bytes, size bytes in all, base64 in
// 76-character lines.
func benchZipMessage(size int) []byte {
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	for i := range 4 {
		f, _ := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("data%d.bin", i), Method: zip.Store})
		data := make([]byte, size/4)
		rand.Read(data)
		f.Write(data)
	}
	zw.Close()
	enc := base64.StdEncoding.EncodeToString(z.Bytes())
	var m bytes.Buffer
	m.WriteString("From: a@example.org\r\nTo: list@example.org\r\nSubject: bench\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nhello list\r\n--BB\r\n")
	m.WriteString("Content-Type: application/zip\r\nContent-Disposition: attachment; filename=files.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		m.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	m.WriteString(enc + "\r\n--BB--\r\n")
	return m.Bytes()
}

// BenchmarkScanZip: one scan of make bench's zip messages, the cache off,
// with an engine that unpacks mail (clamd's case) and one that does not.
func BenchmarkScanZip(b *testing.B) {
	for _, size := range []int{100 << 10, 5 << 20} {
		msg := benchZipMessage(size)
		for _, unpacks := range []bool{true, false} {
			b.Run(fmt.Sprintf("%dKiB/unpacks=%v", size>>10, unpacks), func(b *testing.B) {
				s := New(Options{Name: "bench", SpoolDir: b.TempDir()}, discardEngine{unpacks})
				b.SetBytes(int64(len(msg)))
				b.ReportAllocs()
				for b.Loop() {
					v, err := s.Scan(context.Background(), bytes.NewReader(msg), int64(len(msg)))
					if err != nil || v.Status != verdict.Clean {
						b.Fatal(err, v)
					}
				}
			})
		}
	}
}
