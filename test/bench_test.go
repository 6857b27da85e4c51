package test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/test/harness"
)

// BenchmarkMilter drives avmilter at the milter level, as Postfix does, with
// go-milter's client: one milter connection per message, every message
// distinct (random attachment bytes, so clamd's result cache never hits),
// through a real avstation and clamd, or in-process. It reports messages per
// second and latency percentiles from end of body to the answer.
//
//	go test ./test -run '^$' -bench Milter -benchtime 2000x
func BenchmarkMilter(b *testing.B) {
	clamd := harness.StartClamd(b)
	secret := harness.WriteSecret(b, "bench-secret")
	station := harness.StartStation(b, bin.Station, "", clamd.Addr, secret)
	modes := []struct {
		name string
		opts harness.MilterOptions
	}{
		{"station", harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret}},
		{"in-process", harness.MilterOptions{Clamd: clamd.Addr}},
	}
	for _, mode := range modes {
		m := harness.StartMilter(b, bin.Milter, mode.opts)
		for _, size := range []int{1 << 10, 100 << 10} {
			for _, conc := range []int{1, 10} {
				b.Run(fmt.Sprintf("%s/%dKiB/c%d", mode.name, size>>10, conc), func(b *testing.B) {
					benchMilter(b, m.Addr, size, conc)
				})
			}
		}
	}
}

func benchMilter(b *testing.B, addr string, size, conc int) (msgPerSec float64) {
	msgs := make([]string, b.N)
	for i := range msgs {
		msgs[i] = benchMessage(size)
	}
	var next atomic.Int64
	lat := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	var failed atomic.Value
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := milter.NewClient("tcp", addr, milter.WithReadTimeout(60*time.Second))
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				d, err := oneMessage(client, msgs[i])
				if err != nil {
					failed.Store(err)
					return
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	msgPerSec = float64(b.N) / elapsed.Seconds()
	b.ReportMetric(msgPerSec, "msg/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	return msgPerSec
}

// BenchmarkHungClamd is BenchmarkMilter's station mode with one healthy
// clamd, then with the same clamd and one that accepts connections and never
// answers (listed first), same workload: it reports both rates, their ratio,
// and the slowest /metrics answer of the station while the jobs run.
//
//	go test ./test -run '^$' -bench HungClamd -benchtime 2000x
func BenchmarkHungClamd(b *testing.B) {
	good := harness.StartClamd(b)
	secret := harness.WriteSecret(b, "bench-secret")
	rates := map[string]float64{}
	for _, tt := range []struct {
		name  string
		clamd []string
	}{
		{"one-healthy", []string{good.Addr}},
		{"healthy+hung", []string{harness.StartHungClamd(b), good.Addr}},
	} {
		station := harness.StartStationClamds(b, bin.Station, "", tt.clamd, secret)
		m := harness.StartMilter(b, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret})
		for _, conc := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/c%d", tt.name, conc), func(b *testing.B) {
				stop := scrapeMetrics(b, station, station.Addr, 200*time.Millisecond)
				rates[b.Name()] = benchMilter(b, m.Addr, 1<<10, conc)
				_, slowest := stop()
				b.ReportMetric(float64(slowest.Microseconds())/1000, "metrics-max-ms")
			})
		}
	}
	for _, conc := range []int{1, 10} {
		one := rates[fmt.Sprintf("%s/one-healthy/c%d", b.Name(), conc)]
		hung := rates[fmt.Sprintf("%s/healthy+hung/c%d", b.Name(), conc)]
		if one > 0 {
			b.Logf("c%d: one healthy %.1f msg/s, healthy+hung %.1f msg/s, ratio %.3f", conc, one, hung, hung/one)
		}
	}
}

func oneMessage(client *milter.Client, msg string) (time.Duration, error) {
	macros := milter.NewMacroBag()
	s, err := client.Session(macros)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	s.Conn("bench.example", milter.FamilyInet, 4000, "127.0.0.1")
	s.Helo("bench.example")
	s.Mail("bench@example.com", "")
	s.Rcpt("dev@lists.example.org", "")
	macros.Set(milter.MacroQueueId, "BENCH")
	s.DataStart()
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		s.HeaderField(k, v, nil)
	}
	if _, err := s.HeaderEnd(); err != nil {
		return 0, err
	}
	start := time.Now()
	_, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	if act == nil || act.Type != milter.ActionAccept {
		return 0, fmt.Errorf("clean message answered %v", act)
	}
	return time.Since(start), nil
}

// benchMessage is a clean list posting with a random attachment, so that
// the total is about size bytes.
func benchMessage(size int) string {
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	enc := base64.StdEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString("From: bench@example.com\r\nTo: dev@lists.example.org\r\nSubject: bench\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nhello\r\n--BB\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--BB--\r\n")
	return b.String()
}

// BenchmarkPostfixChain sends distinct 1 KiB list postings through a real
// Postfix with avmilter attached over TCP (in-process scanning with clamd),
// and reports accepted messages per second; the
// same without the milter gives Postfix's own rate on this machine.
// Sessions: 1 and 10 at once.
//
//	go test ./test -run '^$' -bench PostfixChain -benchtime 2000x
func BenchmarkPostfixChain(b *testing.B) {
	clamd := harness.StartClamd(b)
	sink := harness.StartSink(b)
	m := harness.StartMilter(b, bin.Milter, harness.MilterOptions{Clamd: clamd.Addr})
	for _, tt := range []struct{ name, milter string }{{"postfix-alone", ""}, {"postfix+avmilter", "inet:" + m.Addr}} {
		pf := harness.StartPostfix(b, harness.PostfixOptions{Milter: tt.milter, RelayTo: sink.Addr})
		for _, conc := range []int{1, 10} {
			b.Run(fmt.Sprintf("%s/c%d", tt.name, conc), func(b *testing.B) {
				msgs := make([][]byte, b.N)
				for i := range msgs {
					msgs[i] = []byte(benchMessage(1 << 10))
				}
				var next atomic.Int64
				var failed atomic.Value
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := 0; w < conc; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							i := int(next.Add(1)) - 1
							if i >= b.N {
								return
							}
							r := harness.Send(b, pf.SMTPAddr, "bench@example.com", []string{"dev@lists.example.org"}, msgs[i])
							if r.Err != nil || r.Code != 250 {
								failed.Store(fmt.Errorf("message %d: %d %s %v", i, r.Code, r.Text, r.Err))
								return
							}
						}
					}()
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
			})
		}
	}
}
