package jobproto

import (
	"bytes"
	"context"
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
