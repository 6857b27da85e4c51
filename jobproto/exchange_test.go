package jobproto

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/avstation/avstation/verdict"
)

// BenchmarkExchange is one signed job of a 1 KB posting, milter to station
// over loopback TCP and back, one at a time as a single MTA connection
// sends them: what the job protocol costs both ends beyond the scan.
func BenchmarkExchange(b *testing.B) {
	body := []byte("From: a@example.org\r\nTo: list@example.org\r\nSubject: hi\r\n\r\n" + strings.Repeat("hello world, a line of text\r\n", 36))
	s := &Server{
		Keys:         ring(b, keyA),
		SpoolDir:     b.TempDir(),
		MemoryBuffer: 1 << 20, // as the station's default
		Logger:       slog.New(slog.DiscardHandler),
		Scan: func(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
			v := &verdict.Verdict{Scanner: "bench"}
			v.Settle()
			return v, nil
		},
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	c := &Client{Stations: []string{srv.URL}, Keys: ring(b, keyA)}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := c.Scan(context.Background(), Meta{Sender: "a@example.org"}, bytes.NewReader(body), int64(len(body)))
		if err != nil || v.Status != verdict.Clean {
			b.Fatalf("%v %v", v, err)
		}
	}
}

// summedBody is a body that claims a SHA-256 and counts its reads.
type summedBody struct {
	*bytes.Reader
	sum   [32]byte
	reads int
}

func (s *summedBody) SHA256() ([32]byte, bool) { return s.sum, true }
func (s *summedBody) ReadAt(p []byte, off int64) (int, error) {
	s.reads++
	return s.Reader.ReadAt(p, off)
}

// TestPrepareJobTakesTheSum: a body that knows its SHA-256 (a spool.Buffer
// that hashed it as it arrived) is not read to hash it again; one whose
// size is not the job's is.
func TestPrepareJobTakesTheSum(t *testing.T) {
	body := &summedBody{Reader: bytes.NewReader(message), sum: [32]byte{1, 2, 3}}
	j, err := PrepareJob(Meta{}, body, int64(len(message)))
	if err != nil || j.digest != hex.EncodeToString(body.sum[:]) || body.reads != 0 {
		t.Errorf("digest %q, %v after %d reads; want the body's own sum, no read", j.digest, err, body.reads)
	}
	part := int64(len(message) - 1) // not what the sum is of
	j, err = PrepareJob(Meta{}, body, part)
	want := sha256.Sum256(message[:part])
	if err != nil || j.digest != hex.EncodeToString(want[:]) || body.reads == 0 {
		t.Errorf("first %d bytes: digest %q, %v after %d reads; want %x", part, j.digest, err, body.reads, want)
	}
}
