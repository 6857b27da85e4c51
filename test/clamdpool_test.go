package test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/test/harness"
)

// TestClamdPoolFailover scans through a pool of two real clamd from several
// goroutines and stops one of them in the middle: every scan still gets the
// right answer, from the survivor, and the stopped one is marked down.
func TestClamdPoolFailover(t *testing.T) {
	const (
		scans     = 200
		workers   = 4
		killAfter = 50 // scans handed out before the kill
		// handed out while clamd shuts down; the rest go after it is gone.
		duringKill = 50
	)
	first, second := harness.StartClamd(t), harness.StartClamd(t)
	p, err := clamd.NewPool([]string{first.Addr, second.Addr}, clamd.WithHealthInterval(100*time.Millisecond),
		clamd.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	loopDone := make(chan struct{})
	go func() {
		p.Start(ctx)
		close(loopDone)
	}()
	defer func() {
		cancel()
		<-loopDone
	}()

	type job struct {
		n        int
		infected bool
		data     []byte
	}
	jobs := make(chan job)
	var (
		got    atomic.Int32 // scans with the right answer
		errs   atomic.Int32
		missed atomic.Int32 // infected reported clean
		wrong  atomic.Int32 // clean reported infected
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
				res, err := p.Scan(sctx, bytes.NewReader(j.data))
				scancel()
				switch {
				case err != nil:
					errs.Add(1)
					t.Errorf("scan %d (infected %v): %v", j.n, j.infected, err)
				case j.infected && (!res.Found || !strings.HasPrefix(res.Threat, harness.EicarSignature)):
					missed.Add(1)
					t.Errorf("scan %d: EICAR got %+v", j.n, res)
				case !j.infected && res.Found:
					wrong.Add(1)
					t.Errorf("scan %d: clean content got %+v", j.n, res)
				default:
					got.Add(1)
				}
			}
		})
	}
	send := func(from, to int) {
		for n := from; n < to; n++ {
			j := job{n: n, infected: n%4 == 0}
			if j.infected {
				j.data = harness.EICAR()
			} else {
				// Distinct bytes: clamd's cache must not answer for it.
				j.data = fmt.Appendf(nil, "clean payload %d at %d\n%s", n, time.Now().UnixNano(), bytes.Repeat([]byte{byte(n)}, 1000+n))
			}
			jobs <- j
		}
	}

	send(0, killAfter)
	stopped := make(chan struct{})
	go func() {
		first.Stop()
		close(stopped)
	}()
	send(killAfter, killAfter+duringKill)
	<-stopped
	if first.Running() {
		t.Fatal("the first clamd still runs after Stop")
	}
	send(killAfter+duringKill, scans)
	close(jobs)
	wg.Wait()

	t.Logf("%d scans right, %d errors, %d infected missed, %d clean flagged", got.Load(), errs.Load(), missed.Load(), wrong.Load())
	if got.Load() != scans {
		t.Errorf("%d of %d scans got the right answer", got.Load(), scans)
	}
	st := p.Status()
	t.Logf("members: %+v", st)
	if st[0].Up || st[0].LastError == "" || !st[1].Up {
		t.Errorf("Status = %+v, want the stopped clamd down with its error, the other up", st)
	}
	v, err := p.Version(t.Context())
	if err != nil || !strings.HasPrefix(v.Engine, "ClamAV ") {
		t.Errorf("Version = %+v, %v; want the survivor's", v, err)
	}
}
