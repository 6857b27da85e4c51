package milter

import (
	"context"

	"net"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/jobproto"
)

// BenchmarkPoolOneDead is the failover latency: two stations, the first
// dead. first-ms is the first message's time (it meets the dead station and
// fails over), ms/op the messages after it, baseline-ms one healthy station
// alone. Two kinds of death: a closed port (connect refused: the first
// message pays one refused connect) and a hung station (a listener that
// never accepts with its backlog full: the kernel completes the handshake,
// nothing answers), which the first message waits out for its share of
// scan_timeout, here 10 s of 20 s. A station marked down costs the messages
// after it nothing.
func BenchmarkPoolOneDead(b *testing.B) {
	keys, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("bench")})
	good := newFakeStation(&testing.T{}, keys, 1<<20)
	defer good.srv.Close()
	body := strings.Repeat("x", 4096)
	scan := func(p *Pool) time.Duration {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := p.Scan(ctx, jobproto.Meta{}, strings.NewReader(body), int64(len(body))); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	const connect = 500 * time.Millisecond
	for _, dead := range []struct{ name, url string }{
		{"refused", closedURL(b)},
		{"hung", blackHoleURL(b)},
	} {
		b.Run(dead.name, func(b *testing.B) {
			hc := jobproto.NewStationHTTPClient(nil, connect)
			base := NewPool(&jobproto.Client{Stations: []string{good.srv.URL}, Keys: keys, HTTP: hc}, discardLog(), nil)
			scan(base)
			baseline := scan(base)
			p := NewPool(&jobproto.Client{Stations: []string{dead.url, good.srv.URL}, Keys: keys, HTTP: hc}, discardLog(), nil)
			p.next.Store(^uint64(0)) // the dead one first
			first := scan(p)
			b.ResetTimer()
			for b.Loop() {
				scan(p)
			}
			b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
			b.ReportMetric(float64(baseline.Microseconds())/1000, "baseline-ms")
			b.ReportMetric(float64(connect.Milliseconds()), "connect-timeout-ms")
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

// blackHoleURL is a listener that never accepts: once its backlog is full
// (filled here), further SYNs go unanswered and a connect waits for its
// timeout, as with a host whose link is cut.
func blackHoleURL(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	var conns []net.Conn
	for range 4096 {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 50*time.Millisecond)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}
