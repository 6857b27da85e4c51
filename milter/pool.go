package milter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/verdict"
)

// Reasons a job counts against a station: the values of the reason label
// of avmilter_station_failures_total.
const (
	FailErrorVerdict = "error-verdict" // the station's engines failed (verdict status error)
	FailTimeout      = "timeout"       // no answer before the attempt ended (scan_timeout, a step's own timeout)
	FailHung         = "hung"          // no answer to the job, and none to /livez within station_probe_timeout
	FailConnect      = "connect"       // no connection (refused, unreachable, dial timeout)
	FailBusy         = "busy"          // 503: the station is full
	FailTLS          = "tls"           // the TLS handshake failed (certificate, CA, client certificate)
	FailAuth         = "auth"          // the station refused our signature
	FailOther        = "error"         // any other failure (500, a bad answer)
)

// FailReasons lists every reason, for pre-setting metric labels.
var FailReasons = []string{FailErrorVerdict, FailTimeout, FailHung, FailConnect, FailBusy, FailTLS, FailAuth, FailOther}

// ErrNoStation is wrapped by the error of a job when every station is
// marked down: the station-failure action, at once, without trying.
var ErrNoStation = errors.New("no station is up")

// Pool is avmilter's view of its stations: which are up (from job results
// and from probes of /readyz), how many jobs each has in flight, and what
// each accepts. Scan sends a job to the station up with the fewest jobs in
// flight and, when it fails, to the next, within the one deadline of the
// caller's context (scan_timeout).
type Pool struct {
	client  atomic.Pointer[jobproto.Client] // swapped whole by SetKeys
	members []*member
	log     *slog.Logger
	m       *poolMetrics
	probeHC *http.Client
	opts    PoolOptions
	next    atomic.Uint64 // turns the tie between equally loaded stations
}

// PoolOptions are the pool's timings; a zero field takes its default.
type PoolOptions struct {
	// ProbeAfter: a job with no answer this long has its station's /livez
	// asked, and again as often while it waits (station_probe_after).
	ProbeAfter time.Duration
	// ProbeTimeout: how long that /livez may take before the station is
	// taken as hung (station_probe_timeout).
	ProbeTimeout time.Duration
}

// The defaults of PoolOptions, as the station's for a hung clamd.
const (
	DefaultProbeAfter   = 3 * time.Second
	DefaultProbeTimeout = 2 * time.Second
)

// member is one station and what the pool knows of it.
type member struct {
	url, label string

	mu       sync.Mutex
	up       bool
	inFlight int
	maxSize  int64  // from its signed info; 0: not known
	reason   string // why it is down
}

// NewPool builds a pool over the client's stations, all taken as up until
// a job or a probe says otherwise. reg may be nil (no metrics).
func NewPool(client *jobproto.Client, opts PoolOptions, log *slog.Logger, reg prometheus.Registerer) *Pool {
	if opts.ProbeAfter <= 0 {
		opts.ProbeAfter = DefaultProbeAfter
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	p := &Pool{log: log, m: newPoolMetrics(reg), probeHC: client.HTTP, opts: opts}
	p.client.Store(client)
	if p.probeHC == nil {
		p.probeHC = jobproto.NewHTTPClient(nil)
	}
	for _, st := range client.Stations {
		mb := &member{url: strings.TrimRight(st, "/"), label: redact(st), up: true}
		p.members = append(p.members, mb)
		p.m.set(mb.label, true, 0)
	}
	return p
}

// SetKeys puts a new key ring in force for the jobs that start from now:
// a rotation of the secret file without a restart (SIGHUP).
func (p *Pool) SetKeys(keys *jobproto.KeyRing) {
	c := *p.client.Load()
	c.Keys = keys
	p.client.Store(&c)
}

// attempt is one offer of a job to one station.
type attempt struct {
	v      *verdict.Verdict
	err    error
	reason string // "" on success
}

// Scan is milter.Scanner: a verified verdict other than error from one
// station, or an error. An error verdict from every station tried comes
// back as it is (the policy's station-failure); a message over every
// station's max_message_size is an error wrapping jobproto.ErrTooLarge.
func (p *Pool) Scan(ctx context.Context, meta jobproto.Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
	job, err := jobproto.PrepareJob(meta, body, size)
	if err != nil {
		return nil, err
	}
	var errs []error
	var errVerdict *verdict.Verdict
	for round := 0; ; round++ {
		cands, tooLarge := p.candidates(size, round == 0)
		if len(cands) == 0 {
			switch {
			case tooLarge:
				return nil, fmt.Errorf("scan job %s: %d bytes: %w", job.Meta.JobID, size, jobproto.ErrTooLarge)
			case errVerdict != nil:
				return errVerdict, nil
			case len(errs) > 0:
				return nil, errors.Join(errs...)
			}
			return nil, fmt.Errorf("scan job %s: %w (%s)", job.Meta.JobID, ErrNoStation, p.downReasons())
		}
		busy, big := false, 0
		for _, mb := range cands {
			a := p.try(ctx, mb, job)
			if a.reason == "" {
				return a.v, nil
			}
			switch a.reason {
			case FailErrorVerdict:
				errVerdict = a.v
			case FailBusy:
				busy = true
			}
			if errors.Is(a.err, jobproto.ErrTooLarge) {
				big++
			} else if a.err != nil {
				errs = append(errs, a.err)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("scan job %s: %w (%w)", job.Meta.JobID, ctx.Err(), errors.Join(errs...))
			}
		}
		if big == len(cands) {
			return nil, fmt.Errorf("scan job %s: %d bytes: %w", job.Meta.JobID, size, jobproto.ErrTooLarge)
		}
		if errVerdict != nil && !busy {
			return errVerdict, nil
		}
		if !busy {
			continue // the failed ones are down now: the next round says so, or tries the rest
		}
		// A busy station is full, not broken: wait a little and go round
		// again until the deadline rather than tempfail mail that a moment
		// later would be scanned.
		select {
		case <-time.After(busyBackoff(round)):
		case <-ctx.Done():
			return nil, fmt.Errorf("scan job %s: stations busy: %w", job.Meta.JobID, ctx.Err())
		}
	}
}

// candidates are the stations up that accept size bytes, fewest jobs in
// flight first, equals in turn. tooLarge: some station is up, and none of
// them takes size bytes. When none is up and lastResort is set, every
// station is a candidate: a mark is a guess that the probe corrects only
// every station_probe, and a station back before then should not see the
// MTA's retry tempfailed; one that is still dead fails fast (a refused
// connect, its error verdict) and the station-failure rule applies.
func (p *Pool) candidates(size int64, lastResort bool) (out []*member, tooLarge bool) {
	type cand struct {
		m  *member
		n  int
		at int
		up bool
	}
	var cs []cand
	start := int(p.next.Add(1))
	anyUp := false
	for i, mb := range p.members {
		mb.mu.Lock()
		up, n, max := mb.up, mb.inFlight, mb.maxSize
		mb.mu.Unlock()
		if up {
			anyUp = true
		}
		if max > 0 && size > max {
			continue
		}
		cs = append(cs, cand{m: mb, n: n, at: (i - start%len(p.members) + len(p.members)) % len(p.members), up: up})
	}
	if anyUp || !lastResort {
		cs = slices.DeleteFunc(cs, func(c cand) bool { return !c.up })
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.n != b.n {
			return a.n - b.n
		}
		return a.at - b.at
	})
	for _, c := range cs {
		out = append(out, c.m)
	}
	return out, len(out) == 0 && (anyUp || lastResort) && len(p.members) > 0 && p.anyTooSmall(size)
}

// anyTooSmall reports whether some station's known limit is below size.
func (p *Pool) anyTooSmall(size int64) bool {
	for _, mb := range p.members {
		mb.mu.Lock()
		small := mb.maxSize > 0 && size > mb.maxSize
		mb.mu.Unlock()
		if small {
			return true
		}
	}
	return false
}

// try offers the job to one station, for all the time left: a station
// that is slow but alive is waited for (a big message legitimately takes
// long), and one that is hung is found by the watchdog and given up, so
// that the next has its turn inside scan_timeout.
func (p *Pool) try(ctx context.Context, mb *member, job *jobproto.Job) attempt {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	mb.mu.Lock()
	mb.inFlight++
	n := mb.inFlight
	mb.mu.Unlock()
	p.m.inFlight.WithLabelValues(mb.label).Set(float64(n))
	start := time.Now()
	wd := p.watchdog(actx, cancel, mb, job)
	v, err := p.client.Load().ScanAt(actx, mb.url, job)
	hung := wd.stop()
	p.m.latency.WithLabelValues(mb.label).Observe(time.Since(start).Seconds())
	mb.mu.Lock()
	mb.inFlight--
	n = mb.inFlight
	mb.mu.Unlock()
	p.m.inFlight.WithLabelValues(mb.label).Set(float64(n))

	if err != nil && hung != nil && ctx.Err() == nil {
		// The watchdog gave the job up: say why, not "context canceled".
		a := attempt{reason: hungReason(hung)}
		a.err = fmt.Errorf("station %s: scan job %s: %w", mb.label, job.Meta.JobID, hung)
		p.m.failures.WithLabelValues(mb.label, a.reason).Inc()
		p.mark(mb, false, a.reason, a.err)
		return a
	}
	a := attempt{v: v, err: err}
	switch {
	case err == nil && v.Status == verdict.Error:
		a.reason, a.err = FailErrorVerdict, fmt.Errorf("station %s: scan job %s: the station's engines failed", mb.label, job.Meta.JobID)
	case err == nil:
		p.mark(mb, true, "", nil)
		return a
	default:
		if ctx.Err() == nil {
			a.err = p.explainTLS(ctx, mb, err)
		}
		a.reason = classify(a.err, actx, ctx)
	}
	if a.reason == FailOther && status(err) == http.StatusRequestEntityTooLarge {
		// The content's fault: not counted against the station.
		a.err = fmt.Errorf("%w: %w", jobproto.ErrTooLarge, err)
		return a
	}
	if ctx.Err() != nil {
		return a // our deadline or the MTA gone: not the station's fault
	}
	p.m.failures.WithLabelValues(mb.label, a.reason).Inc()
	if a.reason != FailBusy {
		p.mark(mb, false, a.reason, a.err)
	}
	return a
}

// classify names why an attempt failed.
func classify(err error, attemptCtx, jobCtx context.Context) string {
	var se *jobproto.StationError
	errors.As(err, &se)
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var opErr *net.OpError
	switch {
	case se != nil && se.Auth:
		return FailAuth
	case se != nil && se.Status == http.StatusServiceUnavailable:
		return FailBusy
	case errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &certErr), errors.As(err, &alert),
		strings.Contains(err.Error(), "tls: "), strings.Contains(err.Error(), "x509: "), strings.Contains(err.Error(), "station_pin_sha256"):
		return FailTLS
	case attemptCtx.Err() != nil && jobCtx.Err() == nil, errors.Is(err, context.DeadlineExceeded):
		return FailTimeout
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return FailConnect
	}
	return FailOther
}

func status(err error) int {
	var se *jobproto.StationError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// mark records a station's state and logs when it changes.
func (p *Pool) mark(mb *member, up bool, reason string, err error) {
	mb.mu.Lock()
	was := mb.up
	mb.up = up
	mb.reason = reason
	mb.mu.Unlock()
	p.m.up.WithLabelValues(mb.label).Set(b2f(up))
	switch {
	case was && !up:
		attrs := []any{slog.String("station", mb.label), slog.String("reason", reason)}
		if err != nil {
			attrs = append(attrs, slog.String("err", err.Error()))
		}
		if hint := tlsHint(err); hint != "" {
			attrs = append(attrs, slog.String("hint", hint))
		}
		p.log.Warn("station marked down; its jobs go to the other stations", attrs...)
	case !was && up:
		p.log.Info("station up again; it takes jobs", slog.String("station", mb.label))
	}
}

// tlsHint says what to check after a TLS failure.
func tlsHint(err error) string {
	if err == nil {
		return ""
	}
	var unknownCA x509.UnknownAuthorityError
	var certErr *tls.CertificateVerificationError
	switch s := err.Error(); {
	case errors.As(err, &unknownCA), errors.As(err, &certErr) && strings.Contains(s, "unknown authority"):
		return "the station's certificate is not signed by station_ca_file's CA (or the system's roots)"
	case strings.Contains(s, "pinned"):
		return "the station's certificate is not the one station_pin_sha256 names"
	case strings.Contains(s, "remote error: tls: certificate required"):
		return "the station refused us: it requires a client certificate and we showed none; set station_client_cert and station_client_key to one signed by the station's tls_client_ca"
	case strings.Contains(s, "remote error: tls: ") && (strings.Contains(s, "bad certificate") || strings.Contains(s, "unknown certificate") ||
		strings.Contains(s, "certificate expired") || strings.Contains(s, "certificate revoked") || strings.Contains(s, "unsupported certificate")):
		return "the station refused our client certificate (station_client_cert): it is not signed by the station's tls_client_ca, or has expired"
	case strings.Contains(s, "tls: "), strings.Contains(s, "x509: "):
		return "TLS between milter and station failed: check certificates and the https:// in the station address"
	}
	return ""
}

// downReasons names each station and why it is down, for the error of a
// job that found none up.
func (p *Pool) downReasons() string {
	parts := make([]string, 0, len(p.members))
	for _, mb := range p.members {
		mb.mu.Lock()
		parts = append(parts, mb.label+": "+mb.reason)
		mb.mu.Unlock()
	}
	return strings.Join(parts, "; ")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
