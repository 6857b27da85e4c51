package main

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/d--j/go-milter"

	"github.com/avstation/avstation/test/harness"
)

// workload is one kind of traffic: messages of about Size bytes (a text
// part, or a zip attachment of Size bytes), Conc milter connections at
// once, N messages a run.
type workload struct {
	Name string `json:"name"`
	Size int    `json:"size"`
	Zip  bool   `json:"zip"`
	Conc int    `json:"concurrency"`
	N    int    `json:"messages"`
}

// workloads are the issue's, with message counts that keep a run near 5 s
// on 2 cores.
var workloads = []workload{
	{"1KB-c1", 1 << 10, false, 1, 1500},
	{"1KB-c10", 1 << 10, false, 10, 3000},
	{"1KB-c100", 1 << 10, false, 100, 3000},
	{"100KB-zip-c10", 100 << 10, true, 10, 600},
	{"5MB-zip-c1", 5 << 20, true, 1, 12},
}

// message is a list posting whose bytes no other message shares: the
// random content defeats clamd's cache of clean results by content hash.
func message(w workload) string {
	var b strings.Builder
	b.WriteString("From: bench@example.com\r\nTo: dev@lists.example.org\r\nSubject: bench\r\n" +
		"Message-ID: <" + rand.Text() + "@bench.example>\r\nMIME-Version: 1.0\r\n")
	if !w.Zip {
		// A text posting: random words in 72-character lines.
		b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n")
		for b.Len() < w.Size {
			b.WriteString(strings.ToLower(rand.Text()) + " " + strings.ToLower(rand.Text()) + " " + strings.ToLower(rand.Text())[:18] + "\r\n")
		}
		return b.String()
	}
	b.WriteString("Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nthe files\r\n--BB\r\n" +
		"Content-Type: application/zip\r\nContent-Disposition: attachment; filename=files.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(zipOf(w.Size))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--BB--\r\n")
	return b.String()
}

// zipOf is a zip of about size bytes: four stored members of random bytes
// (incompressible, so the archive is the size asked for).
func zipOf(size int) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range 4 {
		f, _ := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("data%d.bin", i), Method: zip.Store})
		raw := make([]byte, size/4)
		rand.Read(raw)
		f.Write(raw)
	}
	zw.Close()
	return buf.Bytes()
}

// result is one run of a workload's messages through one milter.
type result struct {
	N       int
	Failed  int
	First   string // the first failure
	Elapsed time.Duration
	Lat     []time.Duration // of the messages accepted, sorted
}

// drive sends msgs through the milter at network/addr, conc connections at
// once, one milter session a message, as an MTA does; the time of each is
// from the end of the body to the milter's answer.
func drive(network, addr string, msgs []string, conc int) result {
	var next atomic.Int64
	lat := make([]time.Duration, len(msgs))
	ok := make([]bool, len(msgs))
	var mu sync.Mutex
	r := result{N: len(msgs)}
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			client := milter.NewClient(network, addr, milter.WithReadTimeout(120*time.Second))
			for {
				i := int(next.Add(1)) - 1
				if i >= len(msgs) {
					return
				}
				d, err := oneMessage(client, msgs[i])
				if err != nil {
					mu.Lock()
					r.Failed++
					if r.First == "" {
						r.First = err.Error()
					}
					mu.Unlock()
					continue
				}
				lat[i], ok[i] = d, true
			}
		})
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	for i, d := range lat {
		if ok[i] {
			r.Lat = append(r.Lat, d)
		}
	}
	slices.Sort(r.Lat)
	return r
}

// until sends messages made by gen through the milter until stop is
// closed, for profiling: it is not measured.
func until(network, addr string, w workload, stop <-chan struct{}) (sent, failed int64) {
	var s, f atomic.Int64
	var wg sync.WaitGroup
	for range w.Conc {
		wg.Go(func() {
			client := milter.NewClient(network, addr, milter.WithReadTimeout(120*time.Second))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := oneMessage(client, message(w)); err != nil {
					f.Add(1)
				} else {
					s.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return s.Load(), f.Load()
}

// checkRejects sends one message with EICAR attached and wants it
// rejected: a product that let it through would not be scanning, and its
// figures would mean nothing.
func checkRejects(network, addr string) error {
	msg := "From: bench@example.com\r\nTo: dev@lists.example.org\r\nSubject: bench eicar\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nhi\r\n--BB\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=eicar.com\r\n\r\n" +
		string(harness.EICAR()) + "\r\n--BB--\r\n"
	_, err := oneMessage(milter.NewClient(network, addr, milter.WithReadTimeout(60*time.Second)), msg)
	if err == nil {
		return fmt.Errorf("a message with EICAR was accepted")
	}
	if !strings.Contains(err.Error(), "answered") {
		return fmt.Errorf("a message with EICAR: %w", err)
	}
	return nil
}

func oneMessage(client *milter.Client, msg string) (time.Duration, error) {
	macros := milter.NewMacroBag()
	s, err := client.Session(macros)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	macros.Set(milter.MacroMTAFQDN, "mx.bench.example")
	if _, err := s.Conn("bench.example", milter.FamilyInet, 4000, "127.0.0.1"); err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	if _, err := s.Helo("bench.example"); err != nil {
		return 0, fmt.Errorf("helo: %w", err)
	}
	if _, err := s.Mail("bench@example.com", ""); err != nil {
		return 0, fmt.Errorf("mail: %w", err)
	}
	if _, err := s.Rcpt("dev@lists.example.org", ""); err != nil {
		return 0, fmt.Errorf("rcpt: %w", err)
	}
	macros.Set(milter.MacroQueueId, "BENCH"+rand.Text()[:8])
	if _, err := s.DataStart(); err != nil {
		return 0, fmt.Errorf("data: %w", err)
	}
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if _, err := s.HeaderField(k, v, nil); err != nil {
			return 0, fmt.Errorf("header: %w", err)
		}
	}
	if _, err := s.HeaderEnd(); err != nil {
		return 0, fmt.Errorf("end of headers: %w", err)
	}
	start := time.Now()
	_, act, err := s.BodyReadFrom(strings.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("body: %w", err)
	}
	if act == nil || act.Type != milter.ActionAccept && act.Type != milter.ActionContinue {
		return 0, fmt.Errorf("clean message answered %+v", act)
	}
	return time.Since(start), nil
}

// percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[min(len(sorted)-1, len(sorted)*p/100)].Microseconds()) / 1000
}
