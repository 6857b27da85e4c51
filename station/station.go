// Package station is the avstation daemon's HTTP side: the signed job
// protocol in front of the scanner, plus /livez, /readyz (/healthz) and /metrics.
package station

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
	"github.com/avstation/avstation/version"
)

// Station scans jobs from milters.
type Station struct {
	cfg     *config.Station
	scanner *scanner.Scanner
	keys    atomic.Pointer[jobproto.KeyRing] // swapped whole by SetKeys
	log     *slog.Logger
	reg     *prometheus.Registry
	host    string
	metrics *metrics
	conns   atomic.Pointer[limitListener] // set by Listener
	bodies  *spool.Memory                 // job bodies in memory, for memory_buffer_total
}

// New builds a station around a scanner. reg receives its metrics and is
// served on /metrics.
func New(cfg *config.Station, sc *scanner.Scanner, pool *clamd.Pool, keys *jobproto.KeyRing, log *slog.Logger, reg *prometheus.Registry) *Station {
	host, _ := os.Hostname()
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "avstation_cache_hits_total",
			Help: "Jobs answered from the verdict cache (same message, same signature versions).",
		}, func() float64 { h, _ := sc.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "avstation_cache_misses_total",
			Help: "Jobs not found in the verdict cache and scanned.",
		}, func() float64 { _, m := sc.CacheStats(); return float64(m) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "avstation_part_cache_hits_total",
			Help: "Engine calls saved because the same part or member was scanned before with the same signatures.",
		}, func() float64 { h, _ := sc.PartCacheStats(); return float64(h) }),
	)
	if pool != nil {
		reg.MustRegister(clamdCollector{pool})
	}
	reg.MustRegister(signatureCollector{sc})
	m := newMetrics(reg)
	m.primaries = newPrimaryMetrics(reg)
	for _, e := range sc.EngineNames() {
		for _, r := range engineErrorReasons {
			m.engineErrors.WithLabelValues(e, r)
		}
	}
	st := &Station{cfg: cfg, scanner: sc, log: log, reg: reg, host: host, metrics: m, bodies: spool.NewMemory(int64(cfg.MemoryTotal))}
	st.keys.Store(keys)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "avstation_connections_open",
		Help: "Connections open now (max_connections bounds them).",
	}, func() float64 {
		if l := st.conns.Load(); l != nil {
			return float64(l.Open())
		}
		return 0
	}))
	return st
}

// SetKeys puts a new key ring in force for the requests that arrive from
// now: the secret file reloaded on SIGHUP, for a key rotation without a
// restart. Jobs already authenticated finish as they are.
func (s *Station) SetKeys(keys *jobproto.KeyRing) { s.keys.Store(keys) }

// Handler serves the job protocol under /v1/, and /livez, /readyz, /healthz and /metrics
// unauthenticated (they tell nothing about any message).
func (s *Station) Handler() http.Handler {
	jobs := &jobproto.Server{
		KeysFunc:           s.keys.Load,
		Scan:               s.scan,
		Info:               s.info,
		SpoolDir:           s.cfg.SpoolDir,
		MemoryBuffer:       int64(s.cfg.MemoryBuffer),
		Memory:             s.bodies,
		MaxBody:            int64(s.cfg.MaxMessage),
		MaxConcurrent:      s.cfg.MaxConcurrent,
		QueueWait:          s.cfg.QueueWait,
		Window:             s.cfg.ClockSkew,
		BodyTimeout:        s.cfg.BodyTimeout,
		Logger:             s.log,
		OnInvalidSignature: func(reason string) { s.metrics.invalid.WithLabelValues(reason).Inc() },
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", jobs.Handler())
	(&health{check: s.scanner.Check}).handle(mux)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return s.guard(mux)
}

// Server is the HTTP server of Handler with the configured bounds on
// slow, idle and oversized requests.
func (s *Station) Server(errorLog *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// net/http allows 4KiB more than this for the request line.
		MaxHeaderBytes: int(s.cfg.MaxRequestHeader),
		ErrorLog:       newErrorLog(errorLog),
	}
}

// scan is one job: the scanner's verdict and one log line with the job id
// that the milter logged too, so that the two records meet.
func (s *Station) scan(ctx context.Context, meta jobproto.Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	start := time.Now()
	v, err := s.scanner.Scan(scanner.WithDigest(ctx, jobproto.DigestFrom(ctx)), body, size)
	took := time.Since(start)
	attrs := []any{
		slog.String("job_id", meta.JobID),
		slog.String("queue_id", meta.QueueID),
		slog.String("primary", meta.Primary),
		slog.String("key_id", jobproto.KeyIDFrom(ctx)),
		slog.Any("lists", meta.Lists),
		slog.Int64("size", size),
		slog.Duration("took", took),
	}
	if err != nil && s.scanPanic(meta.JobID, err) {
		return nil, err
	}
	if err != nil {
		s.metrics.jobs.WithLabelValues("cancelled").Inc()
		s.log.Warn("scan job not finished", append(attrs, slog.String("err", err.Error()))...)
		return nil, err
	}
	s.metrics.jobs.WithLabelValues(string(v.Status)).Inc()
	s.metrics.primary(meta.Primary, jobproto.KeyIDFrom(ctx))
	for _, f := range v.Findings {
		if f.Kind == verdict.KindScanError && f.Engine != "" {
			s.metrics.engineErrors.WithLabelValues(f.Engine, engineErrorReason(f.Err)).Inc()
		}
	}
	s.metrics.duration.Observe(took.Seconds())
	attrs = append(attrs, slog.String("status", string(v.Status)), slog.Bool("cached", v.Cached))
	if len(v.Findings) > 0 {
		attrs = append(attrs, slog.Any("findings", describe(v.Findings)))
	}
	s.log.Info("job scanned", attrs...)
	rec := Record{JobID: meta.JobID, Time: start, Primary: meta.Primary, KeyID: jobproto.KeyIDFrom(ctx), Client: meta.Client, QueueID: meta.QueueID,
		Lists: meta.Lists, Sender: meta.Sender, Size: size, Duration: took, Verdict: v}
	if err := (Records{Dir: s.cfg.RecordsDir}).Put(rec); err != nil {
		s.log.Error("job record not kept", slog.String("job_id", meta.JobID), slog.Any("err", err))
	}
	return v, nil
}

// describe writes findings compactly for the log: "2 eicar.com virus
// Eicar-Test-Signature (clamd)"; the raw message's path is "message".
func describe(fs []verdict.Finding) []string {
	out := make([]string, 0, len(fs))
	for _, f := range fs {
		path := f.Path
		if path == "" {
			path = "message"
		}
		parts := []string{path}
		if f.FileName != "" {
			parts = append(parts, strconv.Quote(f.FileName))
		}
		parts = append(parts, string(f.Kind))
		if f.Threat != "" {
			parts = append(parts, f.Threat)
		}
		if f.Detail != "" {
			parts = append(parts, strconv.Quote(f.Detail))
		}
		if f.Engine != "" {
			parts = append(parts, "("+f.Engine+")")
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// PruneInterval is how often PruneRecords removes old job records.
const PruneInterval = time.Hour

// PruneRecords removes job records older than records_max_age, now and
// then every PruneInterval, until ctx ends. now is the clock (time.Now;
// tests pass their own).
func (s *Station) PruneRecords(ctx context.Context, now func() time.Time) {
	if s.cfg.RecordsDir == "" {
		return
	}
	t := time.NewTicker(PruneInterval)
	defer t.Stop()
	for {
		s.pruneOnce(now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Station) pruneOnce(now time.Time) {
	n, err := (Records{Dir: s.cfg.RecordsDir}).Prune(now, s.cfg.RecordsMaxAge)
	if err != nil {
		s.log.Error("pruning job records", slog.String("records_dir", s.cfg.RecordsDir), slog.Any("err", err))
	} else if n > 0 {
		s.log.Info("job records pruned", slog.Int("days", n), slog.Duration("records_max_age", s.cfg.RecordsMaxAge))
	}
}

func (s *Station) info(ctx context.Context) jobproto.Info {
	return jobproto.Info{Station: s.host, Version: version.Version, Engines: s.scanner.Versions(ctx), MaxMessageSize: int64(s.cfg.MaxMessage)}
}

// clamdCollector reports each clamd of the pool as up or down.
type clamdCollector struct{ pool *clamd.Pool }

var clamdUpDesc = prometheus.NewDesc("avstation_clamd_up",
	"1 when the clamd at addr answers, 0 when it is marked down (a failed scan or PING).", []string{"addr"}, nil)

func (c clamdCollector) Describe(ch chan<- *prometheus.Desc) { ch <- clamdUpDesc }

func (c clamdCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.pool.Status() {
		up := 0.0
		if m.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(clamdUpDesc, prometheus.GaugeValue, up, m.Addr)
	}
}

// signatureCollector reports each engine's signature database: its age,
// for the alert on a database that stopped updating, and its version.
type signatureCollector struct{ sc *scanner.Scanner }

var (
	sigAgeDesc = prometheus.NewDesc("avstation_signature_age_seconds",
		"Age of the engine's signature database (from its build time); absent when the engine does not say.", []string{"engine"}, nil)
	sigInfoDesc = prometheus.NewDesc("avstation_signature_info",
		"Always 1; the labels name the engine's version and signature database version.", []string{"engine", "version", "signatures"}, nil)
)

func (c signatureCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sigAgeDesc; ch <- sigInfoDesc }

func (c signatureCollector) Collect(ch chan<- prometheus.Metric) {
	// Known versions only: a scrape must not wait on an engine.
	for _, e := range c.sc.KnownVersions() {
		ch <- prometheus.MustNewConstMetric(sigInfoDesc, prometheus.GaugeValue, 1, e.Name, e.Version, e.SignatureVersion)
		if !e.SignatureTime.IsZero() {
			ch <- prometheus.MustNewConstMetric(sigAgeDesc, prometheus.GaugeValue, time.Since(e.SignatureTime).Seconds(), e.Name)
		}
	}
}

// engineErrorReasons are the values of avstation_engine_errors_total's
// reason label, all set at start: the engines' kinds of failure
// (scanner/engineerr) and "error" for the rest. A size limit is a finding,
// not a failure, and is not counted.
var engineErrorReasons = []string{"timeout", "unreachable", "protocol", "error"}

// engineErrorReason sorts an engine failure for the metric by its kind.
func engineErrorReason(err error) string {
	switch {
	case errors.Is(err, engineerr.ErrTimeout):
		return "timeout"
	case errors.Is(err, engineerr.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, engineerr.ErrProtocol):
		return "protocol"
	}
	return "error"
}

type metrics struct {
	engineErrors   *prometheus.CounterVec
	jobs           *prometheus.CounterVec
	invalid        *prometheus.CounterVec
	duration       prometheus.Histogram
	inFlight       prometheus.Gauge
	panics         *prometheus.CounterVec
	connRefused    prometheus.Counter
	headerTooLarge prometheus.Counter
	primaries      *primaryMetrics
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		engineErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avstation_engine_errors_total",
			Help: "Engine calls that failed (the job's verdict is error: tempfail at the milter), by engine and reason (timeout, unreachable, protocol, error).",
		}, []string{"engine", "reason"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avstation_jobs_total",
			Help: "Scan jobs finished, by verdict status (clean, infected, encrypted, limit-exceeded, unscannable, error) or cancelled.",
		}, []string{"status"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avstation_invalid_signatures_total",
			Help: "Job requests refused before scanning because their signature did not verify, by reason.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "avstation_scan_duration_seconds",
			Help:    "Time to scan one job with every engine.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "avstation_jobs_in_flight",
			Help: "Scan jobs being scanned now.",
		}),
	}
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "avstation_panics_total",
		Help: "Panics recovered, by where: scan (a decoder or engine; that job failed, the milter tempfails), handler (the request failed) or listener (a refused connection, closed).",
	}, []string{"where"})
	for _, w := range panicWheres {
		m.panics.WithLabelValues(w)
	}
	m.connRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "avstation_connections_refused_total",
		Help: "Connections answered 503 and closed at once because max_connections were open.",
	})
	m.headerTooLarge = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "avstation_request_headers_too_large_total",
		Help: "Requests answered 431 because their header was over max_request_header_bytes (plain HTTP only: under TLS the answer is not seen).",
	})
	for _, st := range verdict.Statuses {
		m.jobs.WithLabelValues(string(st))
	}
	m.jobs.WithLabelValues("cancelled")
	for _, r := range jobproto.InvalidReasons {
		m.invalid.WithLabelValues(r)
	}
	reg.MustRegister(m.engineErrors, m.jobs, m.invalid, m.duration, m.inFlight, m.panics, m.connRefused, m.headerTooLarge)
	return m
}
