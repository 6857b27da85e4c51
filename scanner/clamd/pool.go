package clamd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/scanner/engineerr"
)

// DefaultHealthInterval is how often the pool PINGs a clamd it has marked
// down. A down clamd costs nothing but its share of the load, so a couple of
// seconds is soon enough to take it back, and a PING every 2 s per down
// member is no load on anyone.
const DefaultHealthInterval = 2 * time.Second

// ErrNoClamd is the pool's error when no member can take a scan: every one
// is down, or every one tried for this scan failed. The error returned wraps
// it and names each member with its last failure. It is of kind
// engineerr.ErrUnreachable.
var ErrNoClamd = engineerr.Mark(errors.New("clamd pool: no clamd is up"), engineerr.ErrUnreachable)

// PoolOption configures a Pool.
type PoolOption func(*Pool)

// WithClientOptions applies o to the Client of every member.
func WithClientOptions(o ...Option) PoolOption {
	return func(p *Pool) { p.clientOpts = append(p.clientOpts, o...) }
}

// WithHealthInterval sets how often Start's loop PINGs the members that are
// down (DefaultHealthInterval). d <= 0 keeps the default.
func WithHealthInterval(d time.Duration) PoolOption {
	return func(p *Pool) {
		if d > 0 {
			p.interval = d
		}
	}
}

// WithStreamMax sets clamd's StreamMaxLength as configured on the members:
// streams of known size above n are refused with ErrSizeLimit without being
// sent. n <= 0 leaves the pool to learn a bound from clamd's refusals.
func WithStreamMax(n int64) PoolOption {
	return func(p *Pool) {
		if n > 0 {
			p.streamMax = n
		}
	}
}

// WithLogger sets the logger for member up and down transitions, one line
// per transition (default: none).
func WithLogger(l *slog.Logger) PoolOption {
	return func(p *Pool) {
		if l != nil {
			p.log = l
		}
	}
}

// MemberStatus is one member's state, for metrics and /v1/info.
type MemberStatus struct {
	Addr string // canonical, as Client.Addr
	Up   bool
	// LastError is the member's most recent failure, kept after it is back
	// up; empty when it never failed.
	LastError string
	// Since is when Up last changed (the pool's creation at first).
	Since time.Time
}

// Pool spreads scans over several clamd, all expected to run with the same
// signatures and limits, and moves a scan to another member when the one it
// went to fails at the connection level. It is safe for concurrent use.
//
// A member is up until a command to it fails at the connection level (refused
// or timed-out dial, reset, connection closed before the reply); it is then
// down at once, and taken back when it answers a PING of the health loop that
// Start runs. Without Start a down member stays down.
type Pool struct {
	members    []*member
	addr       string
	interval   time.Duration
	streamMax  int64 // configured StreamMaxLength, 0 when not given
	clientOpts []Option
	log        *slog.Logger
	now        func() time.Time
	next       atomic.Uint64 // round-robin counter

	mu      sync.Mutex // guards the members' state and learned
	learned int64      // smallest stream size clamd refused, 0 when none
}

type member struct {
	c        *Client
	inflight atomic.Int32 // scans in progress on it
	// Guarded by Pool.mu.
	up      bool
	lastErr string
	since   time.Time
	// downed is cancelled when the member is marked down, which moves its
	// other scans in progress to the next member at once; renewed when it
	// is taken back.
	downed context.Context
	markDn context.CancelFunc
}

func newMember(c *Client, now time.Time) *member {
	m := &member{c: c, up: true, since: now}
	m.downed, m.markDn = context.WithCancel(context.Background())
	return m
}

// NewPool returns a pool over the clamd at addrs, each in a form New takes.
// It does not connect: every member starts up.
func NewPool(addrs []string, opts ...PoolOption) (*Pool, error) {
	if len(addrs) == 0 {
		return nil, errors.New("clamd pool: no address")
	}
	p := &Pool{
		interval: DefaultHealthInterval,
		log:      slog.New(slog.DiscardHandler),
		now:      time.Now,
	}
	for _, o := range opts {
		o(p)
	}
	seen := make(map[string]bool, len(addrs))
	names := make([]string, 0, len(addrs))
	for _, a := range addrs {
		c, err := New(a, p.clientOpts...)
		if err != nil {
			return nil, fmt.Errorf("clamd pool: %w", err)
		}
		if seen[c.Addr()] {
			return nil, fmt.Errorf("clamd pool: %s given twice", c.Addr())
		}
		seen[c.Addr()] = true
		names = append(names, c.Addr())
		p.members = append(p.members, newMember(c, p.now()))
	}
	p.addr = "pool(" + strings.Join(names, ",") + ")"
	return p, nil
}

// Addr names the pool and its members for error messages:
// "pool(tcp:127.0.0.1:3310,unix:/run/clamav/clamd.ctl)".
func (p *Pool) Addr() string { return p.addr }

// Status returns every member's state, in the order NewPool was given them.
func (p *Pool) Status() []MemberStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]MemberStatus, len(p.members))
	for i, m := range p.members {
		out[i] = MemberStatus{Addr: m.c.Addr(), Up: m.up, LastError: m.lastErr, Since: m.since}
	}
	return out
}

// Scan scans r with one member, the one up with the fewest scans in
// progress (round-robin among equals), and returns its answer as Client.Scan does. clamd's answers are final: FOUND,
// OK, ErrSizeLimit and a *ReplyError are the content's, not the member's,
// and go back to the caller as they are. The one exception is a reply of
// "PROTOCOL ERROR", which a clamd gives about its own state (see
// isProtocolError) and which counts as a connection-level failure.
//
// When the member fails at the connection level it is marked down and the
// same content goes to the next member up, at most once to each, provided r
// can be replayed: r is an io.ReadSeeker (*os.File, *io.SectionReader,
// *bytes.Reader), which is sought back to where it stood when Scan was
// called, or nothing was read from r yet (a failed dial). A stream that is
// not seekable and was partly sent is not retried: the error comes back.
// A failure once ctx is done is the caller's: it is returned as it is and
// marks no member down.
//
// When no member is up Scan fails at once with an error wrapping ErrNoClamd
// that names every member and its last failure.
//
// The size of a seekable r is known beforehand: above the StreamMaxLength of
// WithStreamMax, or at or above the size of a stream clamd already refused,
// Scan returns ErrSizeLimit without sending anything.
func (p *Pool) Scan(ctx context.Context, r io.Reader) (Result, error) {
	in, err := newReplay(r)
	if err != nil {
		return Result{}, fmt.Errorf("clamd pool: %w", err)
	}
	if limit := p.sizeLimit(); in.size >= 0 && limit >= 0 && in.size > limit {
		return Result{}, fmt.Errorf("clamd pool: %d-byte stream, over the %d bytes clamd takes: %w", in.size, limit, ErrSizeLimit)
	}
	failed := make([]error, len(p.members)) // this call's failures, by member
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, fmt.Errorf("clamd pool: %w", err)
		}
		i := p.pick(failed)
		if i < 0 {
			return Result{}, p.noClamd(failed)
		}
		m := p.members[i]
		res, err := p.scanOn(ctx, m, in)
		if err == nil || !memberFault(ctx, err) {
			if errors.Is(err, ErrSizeLimit) {
				p.learn(in.size)
			}
			return res, err
		}
		failed[i] = err
		if !errors.Is(err, errAbandoned) {
			p.markDown(m, err)
		}
		if rerr := in.rewind(); rerr != nil {
			return Result{}, fmt.Errorf("%w (not retried on another clamd: %w)", err, rerr)
		}
	}
}

// scanOn scans with m, giving up when m is marked down meanwhile (another
// scan found it hung or gone): this scan would most likely fail on it too.
func (p *Pool) scanOn(ctx context.Context, m *member, in io.Reader) (Result, error) {
	m.inflight.Add(1)
	defer m.inflight.Add(-1)
	p.mu.Lock()
	downed := m.downed
	others := 0
	for _, o := range p.members {
		if o != m && o.up {
			others++
		}
	}
	p.mu.Unlock()
	if others == 0 {
		ctx = withLastResort(ctx)
	}
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(downed, cancel)
	defer stop()
	res, err := m.c.Scan(mctx, in)
	if err != nil && ctx.Err() == nil && downed.Err() != nil {
		return Result{}, engineerr.Mark(fmt.Errorf("clamd %s: INSTREAM: %w (%w)", m.c.Addr(), errAbandoned, err), engineerr.ErrUnreachable)
	}
	return res, err
}

// errAbandoned is a scan given up because its member went down meanwhile;
// the member's own failure is already recorded.
var errAbandoned = errors.New("abandoned: the clamd went down meanwhile")

// Version asks the first member up, in NewPool's order, for its versions.
// A member that fails at the connection level is marked down and the next
// one is asked.
func (p *Pool) Version(ctx context.Context) (Version, error) {
	failed := make([]error, len(p.members))
	for i, m := range p.members {
		if !p.isUp(m) {
			continue
		}
		v, err := m.c.Version(ctx)
		if err == nil || !memberFault(ctx, err) {
			return v, err
		}
		failed[i] = err
		p.markDown(m, err)
	}
	return Version{}, p.noClamd(failed)
}

// Start runs the health loop until ctx is done: every interval it PINGs the
// members that are down, together, and takes back those that answer PONG.
// Call it once, in its own goroutine.
func (p *Pool) Start(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.checkDown(ctx)
	}
}

// checkDown PINGs every down member and waits for the answers. Ping
// bounds itself with the client's ping timeout.
func (p *Pool) checkDown(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range p.members {
		if p.isUp(m) {
			continue
		}
		wg.Go(func() {
			err := panics.Do(func() error { return m.c.Ping(ctx) })
			if pe, ok := errors.AsType[*panics.Error](err); ok {
				p.log.Error("panic recovered", append([]any{slog.String("where", "clamd health check"), slog.String("clamd", m.c.Addr())}, pe.Attrs()...)...)
			}
			switch {
			case ctx.Err() != nil:
				// Shutting down: the result says nothing about clamd.
			case err != nil:
				p.markDown(m, err)
			default:
				p.markUp(m)
			}
		})
	}
	wg.Wait()
}

// pick returns the index of the member up, not failed this scan, with the
// fewest scans in progress, or -1 when there is none. The search starts at
// a rotating member, so that equals take turns. Fewest in progress keeps
// work off a member that is slow or stuck before it is found out.
func (p *Pool) pick(failed []error) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.members)
	start := int((p.next.Add(1) - 1) % uint64(n))
	best, bestLoad := -1, int32(0)
	for k := range n {
		i := (start + k) % n
		m := p.members[i]
		if !m.up || failed[i] != nil {
			continue
		}
		if load := m.inflight.Load(); best < 0 || load < bestLoad {
			best, bestLoad = i, load
		}
	}
	return best
}

func (p *Pool) isUp(m *member) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return m.up
}

func (p *Pool) markDown(m *member, err error) {
	p.mu.Lock()
	m.lastErr = memberError(m, err)
	changed := m.up
	if changed {
		m.up = false
		m.since = p.now()
		m.markDn()
	}
	p.mu.Unlock()
	if changed {
		p.log.Warn("clamd down", slog.String("clamd", m.c.Addr()), slog.String("err", err.Error()))
	}
}

func (p *Pool) markUp(m *member) {
	p.mu.Lock()
	changed := !m.up
	var downFor time.Duration
	if changed {
		now := p.now()
		downFor = now.Sub(m.since)
		m.up = true
		m.since = now
		m.downed, m.markDn = context.WithCancel(context.Background())
	}
	p.mu.Unlock()
	if changed {
		p.log.Info("clamd up", slog.String("clamd", m.c.Addr()), slog.Duration("down_for", downFor))
	}
}

// noClamd is the error for a scan no member could take: each member with the
// failure of this call, or else its last one.
func (p *Pool) noClamd(failed []error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	parts := make([]string, 0, len(p.members))
	for i, m := range p.members {
		switch {
		case failed[i] != nil:
			parts = append(parts, m.c.Addr()+": "+memberError(m, failed[i]))
		case !m.up:
			parts = append(parts, m.c.Addr()+": "+m.lastErr)
		}
	}
	return fmt.Errorf("%w (%s)", ErrNoClamd, strings.Join(parts, "; "))
}

// memberError is err without the "clamd ADDR: " prefix of Client errors,
// for places that name the member already.
func memberError(m *member, err error) string {
	return strings.TrimPrefix(err.Error(), "clamd "+m.c.Addr()+": ")
}

// sizeLimit is the largest stream size the pool lets through, -1 for any:
// the configured StreamMaxLength, or less than the smallest stream clamd
// refused. The learned bound only saves sending what clamd would refuse;
// clamd's reply stays the judge of what the pool lets through.
func (p *Pool) sizeLimit() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	limit := int64(-1)
	if p.streamMax > 0 {
		limit = p.streamMax
	}
	if p.learned > 0 && (limit < 0 || p.learned-1 < limit) {
		limit = p.learned - 1
	}
	return limit
}

// learn records that clamd refused a stream of size bytes (-1: unknown).
func (p *Pool) learn(size int64) {
	if size <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.learned == 0 || size < p.learned {
		p.learned = size
	}
}

// memberFault reports whether err, from a command to one member, is the
// member's failure (connection refused, reset, closed before the reply, a
// timeout of its own, a PROTOCOL ERROR reply) rather than an answer about the
// content, a failure to read the content, or the end of the caller's ctx.
func memberFault(ctx context.Context, err error) bool {
	if err == nil || callerDone(ctx) {
		return false
	}
	var re *ReplyError
	var ie *inputError
	switch {
	case errors.As(err, &re):
		return isProtocolError(re.Reply)
	case errors.Is(err, ErrSizeLimit), errors.As(err, &ie):
		return false
	}
	return true
}

// isProtocolError reports whether a clamd reply is a "PROTOCOL ERROR: ...":
// clamd misread the framing of the command, which this client gets right,
// so the reply is about the state of that clamd, not about the content.
// clamd 1.4.6 answers in-flight INSTREAMs with "PROTOCOL ERROR: ancillary
// data sent without FILDES. ERROR" while it shuts down on SIGTERM (seen in
// test/clamdpool_test.go); such a scan must go to another member.
func isProtocolError(reply string) bool {
	return strings.HasPrefix(reply, "PROTOCOL ERROR")
}

// callerDone reports whether ctx has ended. The connection's deadline, set
// from ctx's, may fire a moment before ctx says so.
func callerDone(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// replay reads the content of one pool scan and can start it over.
type replay struct {
	r     io.Reader
	rs    io.ReadSeeker // nil when r cannot seek
	start int64         // rs's offset when the scan began
	size  int64         // bytes from start to the end, -1 when unknown
	read  int64         // bytes read since the last rewind
}

// newReplay notes where a seekable r stands and how much is left in it. An r
// whose Seek fails at once (a pipe's *os.File) is read as a plain stream.
func newReplay(r io.Reader) (*replay, error) {
	in := &replay{r: r, size: -1}
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		return in, nil
	}
	start, err := rs.Seek(0, io.SeekCurrent)
	if err != nil {
		return in, nil
	}
	end, err := rs.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = rs.Seek(start, io.SeekStart)
	}
	if err != nil {
		return nil, &inputError{fmt.Errorf("seeking: %w", err)}
	}
	in.rs, in.start, in.size = rs, start, end-start
	return in, nil
}

func (in *replay) Read(b []byte) (int, error) {
	n, err := in.r.Read(b)
	in.read += int64(n)
	return n, err
}

var errNotReplayable = errors.New("the content cannot be read again: it is not seekable and was partly sent")

// rewind makes the content readable from its start again.
func (in *replay) rewind() error {
	switch {
	case in.read == 0:
		return nil
	case in.rs == nil:
		return errNotReplayable
	}
	if _, err := in.rs.Seek(in.start, io.SeekStart); err != nil {
		return fmt.Errorf("seeking back to the start: %w", err)
	}
	in.read = 0
	return nil
}
