package milter

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/verdict"
)

// fakeStation is a real job server in front of a scan function a test
// controls, with a /readyz it can turn off.
type fakeStation struct {
	srv      *httptest.Server
	jobs     atomic.Int64
	status   atomic.Value // verdict.Status to answer
	hang     atomic.Bool  // hold every job until it is cancelled
	notReady atomic.Bool
	livez    atomic.Int32  // livezOK, livezBusy (503), livezClose (closes at once) or livezHung (no answer)
	hold     chan struct{} // non-nil: jobs wait for it to close
}

const (
	livezOK = iota
	livezBusy
	livezClose
	livezHung
)

func newFakeStation(t *testing.T, keys *jobproto.KeyRing, maxBody int64) *fakeStation {
	t.Helper()
	f := &fakeStation{}
	f.status.Store(verdict.Clean)
	js := &jobproto.Server{Keys: keys, MaxBody: maxBody, SpoolDir: t.TempDir(),
		Info: func(context.Context) jobproto.Info { return jobproto.Info{Station: "fake", MaxMessageSize: maxBody} },
		Scan: func(ctx context.Context, meta jobproto.Meta, _ io.ReaderAt, _ int64) (*verdict.Verdict, error) {
			f.jobs.Add(1)
			if f.hold != nil {
				select {
				case <-f.hold:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			if f.hang.Load() {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return &verdict.Verdict{Status: f.status.Load().(verdict.Status)}, nil
		}}
	mux := http.NewServeMux()
	mux.Handle("/v1/", js.Handler())
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		switch f.livez.Load() {
		case livezBusy:
			w.WriteHeader(http.StatusServiceUnavailable)
		case livezClose:
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				c.Close()
			}
		case livezHung:
			<-r.Context().Done()
		}
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if f.notReady.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func testKeys(t *testing.T, id, secret string) *jobproto.KeyRing {
	t.Helper()
	k, err := jobproto.NewKeyRing(jobproto.Key{ID: id, Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testProbe are the watchdog's timings in these tests: short, with room
// for a loaded machine to answer /livez in time.
var testProbe = PoolOptions{ProbeAfter: 200 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond}

func newTestPool(t *testing.T, keys *jobproto.KeyRing, urls ...string) (*Pool, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return NewPool(&jobproto.Client{Stations: urls, Keys: keys}, testProbe, slog.New(slog.DiscardHandler), reg), reg
}

// hungURL is a station host whose process is hung: the kernel takes the
// connection, the listener accepts it and reads the request, and nothing
// ever answers (neither the job nor /livez).
func hungURL(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	return "http://" + ln.Addr().String()
}

func scanMsg(t *testing.T, p *Pool, timeout time.Duration, size int) (*verdict.Verdict, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	body := strings.NewReader(strings.Repeat("x", size))
	return p.Scan(ctx, jobproto.Meta{}, body, int64(size))
}

func TestPoolFailover(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tt := range []struct {
		name   string
		bad    func(f *fakeStation) string // makes the first station fail; returns its URL
		reason string
	}{
		{"error verdict", func(f *fakeStation) string { f.status.Store(verdict.Error); return f.srv.URL }, FailErrorVerdict},
		{"connect refused", func(*fakeStation) string { return closed.URL }, FailConnect},
		{"hung station", func(*fakeStation) string { return hungURL(t) }, FailHung},
		{"wrong key", func(f *fakeStation) string { return f.srv.URL }, FailAuth},
	} {
		t.Run(tt.name, func(t *testing.T) {
			badKeys := keys
			if tt.reason == FailAuth {
				badKeys = testKeys(t, "default", "other-secret")
			}
			bad := newFakeStation(t, badKeys, 1<<20)
			good := newFakeStation(t, keys, 1<<20)
			badURL := tt.bad(bad)
			p, _ := newTestPool(t, keys, badURL, good.srv.URL)
			p.next.Store(^uint64(0)) // the first scan starts at the bad station
			start := time.Now()
			v, err := scanMsg(t, p, 20*time.Second, 100)
			if err != nil || v.Status != verdict.Clean {
				t.Fatalf("verdict %+v, %v; want clean from the healthy station", v, err)
			}
			// A hung station costs the watchdog's probe_after + timeout,
			// not a share of the 20s scan_timeout.
			if took, most := time.Since(start), testProbe.ProbeAfter+testProbe.ProbeTimeout+time.Second; took > most {
				t.Errorf("took %v to fail over; want at most %v", took, most)
			}
			label := redact(badURL)
			if got := value(p.m.failures.WithLabelValues(label, tt.reason)); got != 1 {
				t.Errorf("failures{%s} = %v, want 1", tt.reason, got)
			}
			if got := value(p.m.up.WithLabelValues(label)); got != 0 {
				t.Errorf("bad station up = %v, want 0", got)
			}
			// Marked down, it is not tried again: the next job goes
			// straight to the healthy one.
			before := bad.jobs.Load()
			for range 3 {
				if v, err := scanMsg(t, p, 2*time.Second, 100); err != nil || v.Status != verdict.Clean {
					t.Fatalf("verdict %+v, %v", v, err)
				}
			}
			if bad.jobs.Load() != before {
				t.Errorf("a station marked down got %d more jobs", bad.jobs.Load()-before)
			}
		})
	}
}

func TestPoolAllDown(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	a, b := newFakeStation(t, keys, 1<<20), newFakeStation(t, keys, 1<<20)
	a.status.Store(verdict.Error)
	b.status.Store(verdict.Error)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	p, _ := newTestPool(t, keys, a.srv.URL, b.srv.URL, closed.URL)
	for i := range 3 {
		// Every station down: each is tried once more as a last resort
		// (fast: an error verdict, a refused connect), then the error
		// verdict comes back for the station-failure rule.
		start := time.Now()
		v, err := scanMsg(t, p, 2*time.Second, 10)
		if err != nil || v.Status != verdict.Error {
			t.Fatalf("scan %d with every station failing: %+v, %v; want their error verdict", i, v, err)
		}
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("scan %d took %v: with every station down it should fail fast", i, took)
		}
	}
	if a.jobs.Load() != 3 || b.jobs.Load() != 3 {
		t.Errorf("jobs %d and %d; want each station tried once per message", a.jobs.Load(), b.jobs.Load())
	}
	// One comes back between probes: the next message finds it.
	b.status.Store(verdict.Clean)
	if v, err := scanMsg(t, p, 2*time.Second, 10); err != nil || v.Status != verdict.Clean {
		t.Fatalf("after a station came back: %+v, %v", v, err)
	}
	if value(p.m.up.WithLabelValues(redact(b.srv.URL))) != 1 {
		t.Error("the station that answered is not marked up")
	}
}

func TestPoolLeastOutstanding(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	a, b := newFakeStation(t, keys, 1<<20), newFakeStation(t, keys, 1<<20)
	a.hold, b.hold = make(chan struct{}), make(chan struct{})
	p, _ := newTestPool(t, keys, a.srv.URL, b.srv.URL)
	done := make(chan error, 4)
	for range 4 {
		go func() { _, err := scanMsg(t, p, 5*time.Second, 10); done <- err }()
	}
	deadline := time.Now().Add(3 * time.Second)
	for a.jobs.Load()+b.jobs.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if a.jobs.Load() != 2 || b.jobs.Load() != 2 {
		t.Errorf("4 jobs at once went %d and %d; want 2 and 2", a.jobs.Load(), b.jobs.Load())
	}
	close(a.hold)
	close(b.hold)
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestPoolProbeBringsStationBack(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	a := newFakeStation(t, keys, 1<<20)
	a.notReady.Store(true)
	p, _ := newTestPool(t, keys, a.srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Watch(ctx, 20*time.Millisecond)
	label := redact(a.srv.URL)
	waitGauge(t, p.m.up.WithLabelValues(label), 0)
	a.notReady.Store(false)
	waitGauge(t, p.m.up.WithLabelValues(label), 1)
	if v, err := scanMsg(t, p, time.Second, 10); err != nil || v.Status != verdict.Clean {
		t.Errorf("after the probe: %+v, %v", v, err)
	}
	if got := value(p.m.maxSize.WithLabelValues(label)); got != 1<<20 {
		t.Errorf("max_message_bytes = %v, want the station's 1MiB", got)
	}
}

func TestPoolOversize(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	a := newFakeStation(t, keys, 2048)
	for _, probed := range []bool{false, true} {
		p, _ := newTestPool(t, keys, a.srv.URL)
		if probed {
			p.probe(context.Background(), p.members[0], time.Second)
		}
		before := a.jobs.Load()
		_, err := scanMsg(t, p, time.Second, 4096)
		if !errors.Is(err, jobproto.ErrTooLarge) {
			t.Errorf("probed=%v: 4096 bytes to a 2048-byte station: %v; want ErrTooLarge", probed, err)
		}
		if got := value(p.m.up.WithLabelValues(redact(a.srv.URL))); got != 1 {
			t.Errorf("probed=%v: a message too large marked the station down", probed)
		}
		if a.jobs.Load() != before {
			t.Errorf("probed=%v: an oversize message was scanned", probed)
		}
		if v, err := scanMsg(t, p, time.Second, 1000); err != nil || v.Status != verdict.Clean {
			t.Errorf("probed=%v: a small message after it: %+v, %v", probed, v, err)
		}
	}
}

func TestPoolSetKeys(t *testing.T) {
	both, _ := jobproto.NewKeyRing(jobproto.Key{ID: "A", Secret: []byte("a")}, jobproto.Key{ID: "B", Secret: []byte("b")})
	a := newFakeStation(t, both, 1<<20)
	p, _ := newTestPool(t, testKeys(t, "A", "a"), a.srv.URL)
	if _, err := scanMsg(t, p, time.Second, 10); err != nil {
		t.Fatal(err)
	}
	p.SetKeys(testKeys(t, "B", "b"))
	if _, err := scanMsg(t, p, time.Second, 10); err != nil {
		t.Fatalf("after rotating to key B: %v", err)
	}
	p.SetKeys(testKeys(t, "C", "c"))
	if _, err := scanMsg(t, p, time.Second, 10); err == nil {
		t.Fatal("a key the station does not know was accepted")
	}
}

func waitGauge(t *testing.T, g prometheus.Collector, want float64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for value(g) != want {
		if time.Now().After(deadline) {
			t.Fatalf("gauge %v, want %v", value(g), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value reads a gauge or counter.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	(<-ch).Write(&m)
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}
