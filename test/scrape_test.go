package test

import (
	"sync"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// scrapeMetrics reads d's /metrics at addr every interval until the
// returned stop is called, which says how many reads there were and how
// long the slowest took: /metrics must stay quick while jobs run.
func scrapeMetrics(t testing.TB, d *harness.Daemon, addr string, every time.Duration) (stop func() (n int, slowest time.Duration)) {
	done := make(chan struct{})
	var n int
	var slowest time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(every):
			}
			start := time.Now()
			d.Metrics(t, addr)
			slowest = max(slowest, time.Since(start))
			n++
		}
	})
	return func() (int, time.Duration) {
		close(done)
		wg.Wait()
		return n, slowest
	}
}
