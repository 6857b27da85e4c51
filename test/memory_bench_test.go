package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// BenchmarkStationMemory sends the station one job of a message with a
// 100 MB attachment (about 137 MB of base64 mail) and reports the station's
// peak resident memory. The target is under 64 MB, whatever the size:
// bodies, parts and members are spooled to disk, never held whole. The
// scan must complete: clamd's limits are raised above the message so that
// every engine call is answered, and a verdict other than clean (one of
// limit-exceeded above all, which stops before the bytes are all read)
// fails the benchmark.
//
//	go test ./test -run '^$' -bench StationMemory -benchtime 1x
func BenchmarkStationMemory(b *testing.B) {
	clamd := harness.StartClamdOpts(b, harness.ClamdOptions{Settings: map[string]string{
		"StreamMaxLength": "512M", "MaxFileSize": "512M", "MaxScanSize": "1024M", "ReadTimeout": "300",
	}})
	secret := harness.WriteSecret(b, "bench-secret")
	station := harness.StartStation(b, bin.Station, "", clamd.Addr, secret, "  engine_timeout: 5m", "max_message_size: 512MiB")
	msg := filepath.Join(b.TempDir(), "big.eml")
	writeBigMessage(b, msg, 100<<20)
	keys, err := jobproto.LoadSecretFile(secret)
	if err != nil {
		b.Fatal(err)
	}
	client := &jobproto.Client{Stations: []string{"http://" + station.Addr}, Keys: keys}
	f, err := os.Open(msg)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		v, err := client.Scan(context.Background(), jobproto.Meta{JobID: jobproto.NewJobID()}, f, fi.Size())
		if err != nil {
			b.Fatal(err)
		}
		if v.Status != verdict.Clean {
			// Random bytes are clean: anything else (limit-exceeded, an
			// engine error) is a scan that did not complete.
			b.Fatalf("the scan of a clean 100 MB attachment did not complete: %q %+v", v.Status, v.Findings)
		}
	}
	b.StopTimer()
	rss, err := station.PeakRSS()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "msg-MB")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MB")
	if rss > 64<<20 {
		b.Errorf("station peak RSS %d MB, target under 64 MB", rss>>20)
	}
	station.Stop()
	station.SpoolEmpty(b)
}

// writeBigMessage writes a posting with a random attachment of size bytes,
// base64 in 76-character lines, streaming (never all in memory).
func writeBigMessage(b *testing.B, path string, size int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	w.WriteString("From: alice@example.com\r\nTo: dev@lists.example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nbig file attached\r\n--BB\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 57*1024) // 57 bytes make one 76-character line
	line := make([]byte, 76)
	for n := 0; n < size; n += len(raw) {
		io.ReadFull(rand.Reader, raw)
		for i := 0; i+57 <= len(raw); i += 57 {
			base64.StdEncoding.Encode(line, raw[i:i+57])
			w.Write(line)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("--BB--\r\n")
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}
