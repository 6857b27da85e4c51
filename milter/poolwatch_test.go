package milter

import (
	"testing"
	"time"

	"github.com/avstation/avstation/verdict"
)

// TestPoolWatchdog: a job the station has not answered after probe_after
// has the station's /livez asked. A station that answers it (200, or 503
// when it is at max_connections) is slow, not hung: the job waits for it
// however many probes that takes. One that stops answering it is given up
// within probe_after + probe_timeout, marked down, and the job goes to the
// next station.
func TestPoolWatchdog(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	const slow = 1500 * time.Millisecond // several probe_after's
	for _, tt := range []struct {
		name     string
		setup    func(t *testing.T, f *fakeStation)
		wantSlow bool // the slow station's verdict, not the other's
	}{
		{"slow, /livez answers: waited for", func(t *testing.T, f *fakeStation) {
			f.hold = make(chan struct{})
			time.AfterFunc(slow, func() { close(f.hold) })
		}, true},
		{"slow, /livez busy 503: waited for", func(t *testing.T, f *fakeStation) {
			f.livez.Store(livezBusy)
			f.hold = make(chan struct{})
			time.AfterFunc(slow, func() { close(f.hold) })
		}, true},
		{"slow, /livez closed at once (TLS at max_connections): waited for", func(t *testing.T, f *fakeStation) {
			f.livez.Store(livezClose)
			f.hold = make(chan struct{})
			time.AfterFunc(slow, func() { close(f.hold) })
		}, true},
		{"/livez stops answering mid-job: given up", func(t *testing.T, f *fakeStation) {
			f.hang.Store(true)
			time.AfterFunc(slow, func() { f.livez.Store(livezHung) })
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			first, other := newFakeStation(t, keys, 1<<20), newFakeStation(t, keys, 1<<20)
			armed := time.Now()
			tt.setup(t, first)
			p, _ := newTestPool(t, keys, first.srv.URL, other.srv.URL)
			p.next.Store(^uint64(0)) // the job starts at first
			start := time.Now()
			v, err := scanMsg(t, p, 20*time.Second, 100)
			took := time.Since(start)
			if err != nil || v.Status != verdict.Clean {
				t.Fatalf("verdict %+v, %v; want clean", v, err)
			}
			label := redact(first.srv.URL)
			failed := value(p.m.failures.WithLabelValues(label, FailHung))
			if tt.wantSlow {
				if other.jobs.Load() != 0 || failed != 0 || value(p.m.up.WithLabelValues(label)) != 1 {
					t.Errorf("a slow station that answers /livez was given up: other station's jobs %d, hung failures %v, up %v",
						other.jobs.Load(), failed, value(p.m.up.WithLabelValues(label)))
				}
				if since := time.Since(armed); since < slow {
					t.Errorf("answered after %v, before the slow station could (%v)", since, slow)
				}
				return
			}
			if other.jobs.Load() != 1 || failed != 1 || value(p.m.up.WithLabelValues(label)) != 0 {
				t.Errorf("hung mid-job: other station's jobs %d, hung failures %v, up %v; want 1, 1, 0",
					other.jobs.Load(), failed, value(p.m.up.WithLabelValues(label)))
			}
			if most := slow + testProbe.ProbeAfter + testProbe.ProbeTimeout + time.Second; took > most {
				t.Errorf("failed over after %v; want at most %v", took, most)
			}
		})
	}
}
