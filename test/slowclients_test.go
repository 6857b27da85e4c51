package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/test/harness"
)

// slowClients holds n connections open against addr, as an attacker or a
// broken network would: a third idle (connected, nothing sent), a third
// sending an unauthenticated request's header a byte every 500ms, a third
// idle on a keep-alive connection after one request. A connection the
// station closes is dialled again, so that n stay open; closed counts the
// station's closes.
type slowClients struct {
	addr   string
	stop   chan struct{}
	wg     sync.WaitGroup
	open   atomic.Int64
	closed atomic.Int64
}

func startSlowClients(t testing.TB, addr string, n int) *slowClients {
	s := &slowClients{addr: addr, stop: make(chan struct{})}
	for i := range n {
		s.wg.Go(func() { s.hold(i % 3) })
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.open.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.open.Load(); got < int64(n) {
		t.Fatalf("only %d of %d slow connections open", got, n)
	}
	return s
}

const slowHeader = "POST /v1/scan HTTP/1.1\r\nHost: station\r\nContent-Length: 1000000\r\nX-Padding: " // never ends

// Kinds of slow client.
const (
	slowIdle = iota
	slowTrickle
	slowKeepAlive
)

func (s *slowClients) hold(kind int) {
	trickle := kind == slowTrickle
	for {
		c, err := net.Dial("tcp", s.addr)
		if err == nil && kind == slowKeepAlive {
			err = healthz(c)
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
				continue
			}
		}
		s.open.Add(1)
		gone := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(gone) }() // EOF: the station closed it
		for i := 0; ; i++ {
			var tick <-chan time.Time
			if trickle {
				tick = time.After(500 * time.Millisecond)
			}
			select {
			case <-s.stop:
				c.Close()
				s.open.Add(-1)
				return
			case <-gone:
				s.closed.Add(1)
			case <-tick:
				c.Write([]byte{slowHeader[i%len(slowHeader)]})
				continue
			}
			break
		}
		c.Close()
		s.open.Add(-1)
	}
}

// healthz asks for /healthz on c and reads the answer, leaving c idle in
// keep-alive.
func healthz(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: station\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

// Stop closes every connection.
func (s *slowClients) Stop() {
	close(s.stop)
	s.wg.Wait()
}

// gauge reads one unlabelled sample from /metrics text.
func gauge(t testing.TB, metrics, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics:\n%s", name, metrics)
	return 0
}

// signedJobs sends n signed scan jobs as avmilter does and returns their
// latencies.
func signedJobs(t testing.TB, c *jobproto.Client, n int) []time.Duration {
	t.Helper()
	msg := harness.BuildMessage(sender, listRcp, "slow clients", "hello\r\n")
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		v, err := c.Scan(ctx, jobproto.Meta{}, strings.NewReader(string(msg)), int64(len(msg)))
		cancel()
		if err != nil || v.Status != "clean" {
			t.Fatalf("job %d: %+v, %v", i, v, err)
		}
		out[i] = time.Since(start)
	}
	return out
}

func loadKeys(t testing.TB, secret string) *jobproto.KeyRing {
	t.Helper()
	keys, err := jobproto.LoadSecretFile(secret)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestSlowClientsBounded: 500 idle and slow connections against a running
// avstation; signed jobs are still answered, the station itself closes the
// slow ones (read_header_timeout), and once the clients are gone its
// goroutines and open files are back at their baseline.
func TestSlowClientsBounded(t *testing.T) {
	clamd := harness.StartClamd(t)
	secret := harness.WriteSecret(t, "slow-clients-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret, "read_header_timeout: 2s", "idle_timeout: 2s")
	c := &jobproto.Client{Stations: []string{"http://" + station.Addr}, Keys: loadKeys(t, secret)}
	quiet := signedJobs(t, c, 20)
	// The client's keep-alive connection stays open: part of the baseline.
	time.Sleep(500 * time.Millisecond)
	m := station.Metrics(t, station.Addr)
	baseG, baseFD := gauge(t, m, "go_goroutines"), gauge(t, m, "process_open_fds")

	slow := startSlowClients(t, station.Addr, 500)
	m = station.Metrics(t, station.Addr)
	heldG, heldFD := gauge(t, m, "go_goroutines"), gauge(t, m, "process_open_fds")
	busy := signedJobs(t, c, 20)
	// The station cuts every slow connection within read_header_timeout
	// of its start (idle_timeout after its last answer); each is dialled
	// again at once.
	time.Sleep(3 * time.Second)
	cut := slow.closed.Load()
	slow.Stop()
	t.Logf("baseline %v goroutines, %v fds; with 500 slow connections %v goroutines, %v fds; %d cut by the station in 3s",
		baseG, baseFD, heldG, heldFD, cut)
	t.Logf("signed job latency: quiet p50 %v max %v; with 500 slow p50 %v max %v",
		pct(quiet, 50), pct(quiet, 100), pct(busy, 50), pct(busy, 100))
	if heldFD < baseFD+400 {
		t.Errorf("only %v fds with 500 connections held (baseline %v): were they open?", heldFD, baseFD)
	}
	if cut < 500 {
		t.Errorf("the station closed %d slow connections in 3s, want all 500 (read_header_timeout and idle_timeout 2s)", cut)
	}
	if p := pct(busy, 50); p > 4*pct(quiet, 50)+50*time.Millisecond {
		t.Errorf("p50 %v with slow clients, %v without", p, pct(quiet, 50))
	}

	var g, fd float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = station.Metrics(t, station.Addr)
		g, fd = gauge(t, m, "go_goroutines"), gauge(t, m, "process_open_fds")
		if (g <= baseG+3 && fd <= baseFD+2) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("after the slow clients left: %v goroutines, %v fds", g, fd)
	if g > baseG+3 || fd > baseFD+2 {
		t.Errorf("goroutines %v (baseline %v), fds %v (baseline %v) after the slow clients left", g, baseG, fd, baseFD)
	}
	if open := gauge(t, m, "avstation_connections_open"); open > 3 {
		t.Errorf("avstation_connections_open %v after the slow clients left", open)
	}
	station.Stop()
	station.SpoolEmpty(t)
}

// pct is the p-th percentile of ds (100: the largest).
func pct(ds []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s { // insertion sort: a few dozen values
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	i := min(len(s)*p/100, len(s)-1)
	return s[i]
}

// BenchmarkSlowClients: signed jobs from avmilter (at the milter level, as
// BenchmarkMilter) through avstation and clamd, with no other clients and
// with 500 slow or idle connections held open against the station (dialled
// again whenever the station cuts one). It reports p50 and p99 of each.
//
//	go test ./test -run '^$' -bench SlowClients -benchtime 300x
func BenchmarkSlowClients(b *testing.B) {
	clamd := harness.StartClamd(b)
	secret := harness.WriteSecret(b, "bench-secret")
	station := harness.StartStation(b, bin.Station, "", clamd.Addr, secret)
	m := harness.StartMilter(b, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret})
	for _, slow := range []int{0, 500} {
		b.Run(fmt.Sprintf("slow%d", slow), func(b *testing.B) {
			if slow > 0 {
				s := startSlowClients(b, station.Addr, slow)
				defer func() { b.ReportMetric(float64(s.closed.Load()), "cut-by-station"); s.Stop() }()
			}
			benchMilter(b, m.Addr, 1<<10, 1)
		})
	}
}

// TestStationStartupSweep: avstation removes the job bodies and spilled
// parts a crash left in spool_dir at start, logs how many, and leaves
// every other file alone.
func TestStationStartupSweep(t *testing.T) {
	clamd := harness.StartClamd(t)
	secret := harness.WriteSecret(t, "sweep-secret")
	station := harness.StartStation(t, bin.Station, "", clamd.Addr, secret)
	station.Stop()
	for _, name := range []string{"avs-job-123.eml", "avspool-456", "keep.txt"} {
		if err := os.WriteFile(filepath.Join(station.Spool, name), []byte("mail"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	station.Restart()
	station.WaitLog(t, 5*time.Second, "start-up sweep", "setting=spool_dir", "removed=2")
	left, _ := os.ReadDir(station.Spool)
	if len(left) != 1 || left[0].Name() != "keep.txt" {
		t.Errorf("spool after the sweep: %v, want keep.txt alone", left)
	}
}
