package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/d--j/go-milter"

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

// BenchmarkConcurrentMemory holds 100 distinct 10 MB postings in avmilter at
// once, at the milter level as Postfix passes them, each scanned through a
// real avstation and clamd (and then in-process), and reports each daemon's
// peak resident memory. Targets: avmilter at most 128 MB, avstation at most
// 256 MB, every message answered (accepted: the attachments are random bytes,
// so anything else is a scan that did not complete). Bodies over
// memory_buffer are spooled, never held whole; the station bounds its jobs
// in progress and spools each body.
//
//	go test ./test -run '^$' -bench ConcurrentMemory -benchtime 1x
func BenchmarkConcurrentMemory(b *testing.B) {
	const conc, size = 100, 10 << 20
	clamd := harness.StartClamdOpts(b, harness.ClamdOptions{Settings: map[string]string{
		"StreamMaxLength": "64M", "MaxFileSize": "64M", "MaxScanSize": "256M", "ReadTimeout": "300",
	}})
	secret := harness.WriteSecret(b, "bench-secret")
	dir := b.TempDir()
	msgs := make([]string, conc)
	for i := range msgs {
		msgs[i] = filepath.Join(dir, fmt.Sprintf("m%03d.eml", i))
		writeBigMessage(b, msgs[i], size)
	}
	for _, mode := range []string{"station", "in-process"} {
		b.Run(mode, func(b *testing.B) {
			var station *harness.Daemon
			opts := harness.MilterOptions{Clamd: clamd.Addr, MemoryBuffer: "8MiB", LogLevel: "debug",
				Extra: "scan_timeout: 10m\n"}
			if mode == "station" {
				station = harness.StartStation(b, bin.Station, "", clamd.Addr, secret, "  engine_timeout: 5m")
				opts = harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret, MemoryBuffer: "8MiB",
					LogLevel: "info", ScanTimeout: "10m", Extra: os.Getenv("AVS_EXTRA")}
			}
			m := harness.StartMilter(b, bin.Milter, opts)
			for n := 0; n < b.N; n++ {
				concurrentBigPostings(b, m, msgs)
			}
			report := func(d *harness.Daemon, name string, limit int64) {
				rss, err := d.PeakRSS()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rss)/(1<<20), name+"-peak-RSS-MB")
				if rss > limit {
					b.Errorf("%s peak RSS %d MB, target at most %d MB", name, rss>>20, limit>>20)
				}
			}
			report(m, "avmilter", 128<<20)
			if station != nil {
				report(station, "avstation", 256<<20)
			}
		})
	}
}

// concurrentBigPostings sends every message at once, each on its own milter
// connection, the body streamed from its file, and fails unless every one
// is accepted.
func concurrentBigPostings(b *testing.B, m *harness.Daemon, msgs []string) {
	var wg sync.WaitGroup
	answers := make([]string, len(msgs))
	for i, path := range msgs {
		wg.Go(func() {
			client := milter.NewClient("tcp", m.Addr, milter.WithReadTimeout(10*time.Minute), milter.WithWriteTimeout(10*time.Minute))
			f, err := os.Open(path)
			if err != nil {
				answers[i] = err.Error()
				return
			}
			defer f.Close()
			answers[i], err = milterAnswerStream(client, f)
			if err != nil {
				answers[i] = err.Error()
			}
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, a := range answers {
		count[a]++
	}
	if count["accept"] != len(msgs) {
		b.Fatalf("%d of %d accepted; answers %v; the first refusals:\n%s", count["accept"], len(msgs), count, firstLines(m.Log(), "outcome=station-failure", 3)+firstLines(m.Log(), "level=WARN", 5)+firstLines(m.Log(), "level=ERROR", 5))
	}
}

// firstLines is the first n lines of log that contain sub.
func firstLines(log, sub string, n int) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, sub) && len(out) < n {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// milterAnswerStream is milterAnswer for a message read from r: the header
// fields one by one, then the body streamed.
func milterAnswerStream(c *milter.Client, r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var head []byte
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return "", fmt.Errorf("reading header: %w", err)
		}
		head = append(head, line...)
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
	}
	fields, _ := splitHeader(head)
	return milterSession(c, "MEMORY", fields, br)
}
