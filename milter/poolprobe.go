package milter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/internal/panics"
)

// probeTimeout bounds one probe of one station: /readyz and the signed
// info together.
const probeTimeout = 5 * time.Second

// Watch probes every station now and then every interval until ctx ends:
// GET /readyz (200: an engine answers with signatures loaded) and then the
// signed /v1/info, for the station's limits and a check of our key. A
// station that passes both is up; one that fails either is down. Jobs mark
// stations down at once; the probe is what brings them back.
func (p *Pool) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, mb := range p.members {
			wg.Go(func() { p.probeGuarded(ctx, mb, min(interval, probeTimeout)) })
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeGuarded is probe with a panic in it (reading a station's answers)
// taken as that station failing its probe: logged once with the stack,
// and the station down until a probe passes.
func (p *Pool) probeGuarded(ctx context.Context, mb *member, timeout time.Duration) {
	err := panics.Do(func() error { p.probe(ctx, mb, timeout); return nil })
	if pe, ok := errors.AsType[*panics.Error](err); ok {
		p.log.Error("panic recovered", append([]any{slog.String("where", "station probe"), slog.String("station", mb.label)}, pe.Attrs()...)...)
		p.mark(mb, false, FailOther, err)
	}
}

// probe asks one station whether it is ready and what it accepts.
func (p *Pool) probe(ctx context.Context, mb *member, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := ready(ctx, p.probeHC, mb.url); err != nil {
		err = p.explainTLS(ctx, mb, err)
		reason := classify(err, ctx, context.Background())
		if reason == FailOther {
			reason = "not ready"
		}
		p.mark(mb, false, reason, err)
		return
	}
	info, err := p.client.Load().Info(ctx, mb.url)
	if err != nil {
		err = p.explainTLS(ctx, mb, err)
		p.mark(mb, false, classify(err, ctx, context.Background()), err)
		return
	}
	mb.mu.Lock()
	changed := mb.maxSize != info.MaxMessageSize
	mb.maxSize = info.MaxMessageSize
	mb.mu.Unlock()
	if changed && info.MaxMessageSize > 0 {
		p.log.Info("station limits", "station", mb.label, "max_message_size", info.MaxMessageSize, "engines", info.Engines)
	}
	p.m.maxSize.WithLabelValues(mb.label).Set(float64(info.MaxMessageSize))
	p.mark(mb, true, "", nil)
}

// ready is GET /readyz answered 200.
func ready(ctx context.Context, hc *http.Client, station string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, station+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("station %s: /readyz answered %s", redact(station), resp.Status)
	}
	return nil
}

// busyBackoff is the pause before going round all stations again when they
// were busy: 20 ms doubling to 500 ms, with jitter so that waiting milters
// do not come back all at once.
func busyBackoff(attempt int) time.Duration {
	d := 20 * time.Millisecond << min(attempt, 5)
	d = min(d, 500*time.Millisecond)
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

// redact drops any user:password from a station URL before it is a label.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "invalid"
	}
	u.User = nil
	return u.String()
}

type poolMetrics struct {
	up, inFlight, maxSize *prometheus.GaugeVec
	failures              *prometheus.CounterVec
	latency               *prometheus.HistogramVec
}

func newPoolMetrics(reg prometheus.Registerer) *poolMetrics {
	m := &poolMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "avmilter_station_up",
			Help: "1 when the station takes jobs (its /readyz and signed info answer, and its last job did not fail), 0 when it is marked down; one series per configured station.",
		}, []string{"station"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "avmilter_station_in_flight",
			Help: "Jobs this milter has at the station now (the pool sends each job to the station up with the fewest).",
		}, []string{"station"}),
		maxSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "avmilter_station_max_message_bytes",
			Help: "The station's max_message_size, from its signed info; 0 until known.",
		}, []string{"station"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avmilter_station_failures_total",
			Help: "Jobs a station did not answer with a usable verdict, by reason (error-verdict, timeout, hung, connect, busy, tls, auth, error); each was offered to the next station.",
		}, []string{"station", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "avmilter_station_job_seconds",
			Help:    "Time of one job at one station, answered or failed.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"station"}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.inFlight, m.maxSize, m.failures, m.latency)
	}
	return m
}

// set pre-sets one station's series, so that dashboards see zeros.
func (m *poolMetrics) set(label string, up bool, inFlight int) {
	m.up.WithLabelValues(label).Set(b2f(up))
	m.inFlight.WithLabelValues(label).Set(float64(inFlight))
	m.maxSize.WithLabelValues(label)
	m.latency.WithLabelValues(label)
	for _, r := range FailReasons {
		m.failures.WithLabelValues(label, r)
	}
}
