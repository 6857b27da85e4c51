package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/avstation/avstation/jobproto"
)

// hungError is why the watchdog gave a job up.
type hungError struct {
	waited, timeout time.Duration
	err             error // the /livez probe's
}

func (e *hungError) Error() string {
	return fmt.Sprintf("no answer after %v, and /livez did not answer within %v (%v)", e.waited.Round(time.Millisecond), e.timeout, e.err)
}

func (e *hungError) Unwrap() error { return e.err }

// hungReason is the failure reason of a job the watchdog gave up: a
// refused connect is a station gone (connect), no answer at all is hung.
func hungReason(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" && !opErr.Timeout() {
		return FailConnect
	}
	return FailHung
}

// watch is one job's watchdog; stop ends it. Until ProbeAfter has passed
// it is only a timer: most jobs are answered before, and then cost no
// goroutine of their own.
type watch struct {
	timer        *time.Timer
	done, exited chan struct{} // stop closes done; a started watchdog closes exited
	err          *hungError    // set before exited is closed
}

// watchdog is the station's answer to a hung clamd, one level up: each
// time the job has waited ProbeAfter with no answer, the station's /livez
// is asked with ProbeTimeout. Any answer (even a 503 from a station at
// max_connections, see live) means the process runs and is busy, and the
// job waits on. No answer, or a refused connect, means it is hung or gone:
// cancel is called, so the job fails now and goes to the next station,
// instead of waiting out scan_timeout.
func (p *Pool) watchdog(ctx context.Context, cancel context.CancelFunc, mb *member, job *jobproto.Job) *watch {
	w := &watch{done: make(chan struct{}), exited: make(chan struct{})}
	start := time.Now()
	w.timer = time.AfterFunc(p.opts.ProbeAfter, func() {
		defer close(w.exited)
		for {
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			default:
			}
			waited := time.Since(start)
			err := p.live(ctx, mb.url)
			select {
			case <-w.done:
				return // answered meanwhile
			default:
			}
			if err != nil && ctx.Err() == nil {
				w.err = &hungError{waited: waited, timeout: p.opts.ProbeTimeout, err: err}
				p.log.Warn("station hung: no answer to the job, none to /livez; the job is given up there",
					slog.String("station", mb.label), slog.String("job_id", job.Meta.JobID), slog.String("queue_id", job.Meta.QueueID),
					slog.Duration("waited", waited.Round(time.Millisecond)), slog.String("err", err.Error()))
				cancel()
				return
			}
			select {
			case <-w.done:
				return
			case <-ctx.Done():
				return
			case <-time.After(p.opts.ProbeAfter):
			}
		}
	})
	return w
}

// stop ends the watchdog and returns why it gave the job up, or nil.
func (w *watch) stop() error {
	close(w.done)
	if w.timer.Stop() {
		return nil // it never started
	}
	<-w.exited
	if w.err == nil {
		return nil
	}
	return w.err
}

// live is GET /livez with ProbeTimeout. It fails only when nothing
// answered in time or the connection could not be made: any HTTP answer,
// and also a connection closed at once (a TLS station at max_connections
// closes those past it), means the station's process runs.
func (p *Pool) live(ctx context.Context, station string) error {
	pctx, cancel := context.WithTimeout(ctx, p.opts.ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, station+"/livez", nil)
	if err != nil {
		return err
	}
	resp, err := p.probeHC.Do(req)
	if err == nil {
		resp.Body.Close()
		return nil
	}
	var opErr *net.OpError
	if pctx.Err() != nil || errors.As(err, &opErr) && opErr.Op == "dial" {
		return err
	}
	return nil
}
