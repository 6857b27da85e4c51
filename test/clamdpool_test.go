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

	"github.com/d--j/go-milter"

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

// TestHungClamdStation runs list postings through avmilter and a real
// avstation whose clamd pool is a real clamd and one that accepts
// connections and never answers (listed first, so that it is asked first):
// no posting is tempfailed, every one is scanned by the real clamd, the hung
// one is marked down, and /metrics answers while jobs are in flight.
func TestHungClamdStation(t *testing.T) {
	const postings, workers = 60, 4
	good := harness.StartClamd(t)
	hung := harness.StartHungClamd(t)
	secret := harness.WriteSecret(t, "hung-secret")
	station := harness.StartStationClamds(t, bin.Station, "", []string{hung, good.Addr}, secret)
	m := harness.StartMilter(t, bin.Milter, harness.MilterOptions{Station: "http://" + station.Addr, Secret: secret})

	stop := scrapeMetrics(t, station, station.Addr, 100*time.Millisecond)

	var next, accepted atomic.Int32
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			client := milter.NewClient("tcp", m.Addr, milter.WithReadTimeout(60*time.Second))
			for {
				i := int(next.Add(1)) - 1
				if i >= postings {
					return
				}
				if _, err := oneMessage(client, benchMessage(4<<10)); err != nil {
					t.Errorf("posting %d: %v", i, err)
					continue
				}
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	scrapes, slowest := stop()

	t.Logf("%d of %d postings accepted in %v; %d /metrics scrapes meanwhile, slowest %v",
		accepted.Load(), postings, took, scrapes, slowest)
	if accepted.Load() != postings {
		t.Errorf("%d of %d postings accepted; the others were tempfailed", accepted.Load(), postings)
	}
	// Generous: the 100 ms goal is measured by BenchmarkHungClamd on a quiet
	// machine; here it must not wait on any engine.
	if scrapes == 0 || slowest > 2*time.Second {
		t.Errorf("/metrics: %d scrapes, slowest %v; want answers within 2s while jobs run", scrapes, slowest)
	}
	metrics := station.Metrics(t, station.Addr)
	for _, want := range []string{
		fmt.Sprintf(`avstation_jobs_total{status="clean"} %d`, postings),
		`avstation_jobs_total{status="error"} 0`,
		fmt.Sprintf(`avstation_clamd_up{addr=%q} 0`, hung),
		fmt.Sprintf(`avstation_clamd_up{addr=%q} 1`, good.Addr),
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s:\n%s", want, grepLines(metrics, "avstation_jobs_total", "avstation_clamd_up"))
		}
	}
	// Found out by the first VERSION or the INSTREAM probe, whichever asks first.
	station.WaitLog(t, time.Second, "clamd down", hung)
}

// grepLines is the lines of text that contain one of subs.
func grepLines(text string, subs ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				b.WriteString(l + "\n")
				break
			}
		}
	}
	return b.String()
}
