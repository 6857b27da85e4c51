package milter

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
)

// BenchmarkPoolOneDead is the failover latency: two stations, the first
// one bad, with the default settings (station_connect_timeout,
// station_probe_after, station_probe_timeout, scan_timeout). Reported per
// kind of bad station:
//
//   - first-added-ms: what the first message pays over baseline-ms (one
//     healthy station alone) to meet the bad one and fail over; bound-ms is
//     what it should stay within;
//   - after-added-ms: what each message after it pays over baseline-ms (the
//     bad station is marked down and skipped): near zero.
//
// Kinds: refused (a closed port: one refused connect), unreachable (a
// host that answers no SYN: station_connect_timeout, or the watchdog if
// sooner) and hung (takes the connection, reads the job, never answers,
// not even /livez: station_probe_after + station_probe_timeout).
func BenchmarkPoolOneDead(b *testing.B) {
	def := config.DefaultMilter()
	opts := PoolOptions{ProbeAfter: def.StationProbeAfter, ProbeTimeout: def.StationProbeTimeout}
	keys, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("bench")})
	good := newFakeStation(&testing.T{}, keys, 1<<20)
	defer good.srv.Close()
	body := strings.Repeat("x", 4096)
	scan := func(p *Pool) time.Duration {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), def.ScanTimeout)
		defer cancel()
		if _, err := p.Scan(ctx, jobproto.Meta{}, strings.NewReader(body), int64(len(body))); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	hung := opts.ProbeAfter + opts.ProbeTimeout
	for _, bad := range []struct {
		name  string
		url   string
		bound time.Duration
	}{
		{"refused", closedURL(b), def.StationConnect},
		{"unreachable", unreachableURL(b), min(def.StationConnect, hung)},
		{"hung", hungURL(b), hung},
	} {
		b.Run(bad.name, func(b *testing.B) {
			hc := jobproto.NewStationHTTPClient(nil, def.StationConnect)
			base := NewPool(&jobproto.Client{Stations: []string{good.srv.URL}, Keys: keys, HTTP: hc}, opts, discardLog(), nil)
			scan(base)
			var baseline time.Duration
			const baseN = 20
			for range baseN {
				baseline += scan(base)
			}
			baseline /= baseN
			p := NewPool(&jobproto.Client{Stations: []string{bad.url, good.srv.URL}, Keys: keys, HTTP: hc}, opts, discardLog(), nil)
			p.next.Store(^uint64(0)) // the bad one first
			first := scan(p)
			var after time.Duration
			n := 0
			for b.Loop() {
				after += scan(p)
				n++
			}
			after /= time.Duration(n)
			ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
			b.ReportMetric(ms(first-baseline), "first-added-ms")
			b.ReportMetric(ms(bad.bound), "bound-ms")
			b.ReportMetric(ms(after-baseline), "after-added-ms")
			b.ReportMetric(ms(baseline), "baseline-ms")
		})
	}
}

func closedURL(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// unreachableURL is a port whose SYNs go unanswered, as with a host whose
// link is cut: a socket listening with a backlog of 0 that never accepts,
// its one queued connection taken here, so that the kernel drops every
// further SYN and a connect waits for its timeout.
func unreachableURL(b *testing.B) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		b.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		b.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return "http://" + addr // the queue is full: SYNs are dropped now
		}
		b.Cleanup(func() { c.Close() })
	}
	b.Fatalf("%s still takes connections with its backlog full", addr)
	return ""
}
