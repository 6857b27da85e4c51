// Package scanner is everything the station does to a message: it walks the
// MIME structure, decodes each part and asks every engine about the raw
// message and each decoded part. It returns a verdict (data) and knows
// nothing of actions or of the MTA. avmilter imports it to scan in-process
// when no station is configured.
package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/avstation/avstation/internal/digest"
	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/scanner/archive"
	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
)

// Engine is one anti-virus engine: scan this stream, say what you found.
type Engine interface {
	// Name is a short stable name ("clamd") for logs and verdicts.
	Name() string
	// Scan reads r to the end (or until ctx is done) and reports a detection.
	// It returns ErrTooLarge when the engine refused the size of r.
	Scan(ctx context.Context, r io.Reader) (Detection, error)
	// Version reports the engine and signature versions.
	Version(ctx context.Context) (verdict.Engine, error)
}

// Detection is an engine's answer for one stream.
type Detection struct {
	Found  bool
	Threat string // may be empty when the engine gave no name
	Raw    string // the engine's reply as received, for the station's records
	// Kind is what a Found detection is: a virus when empty. An engine that
	// stopped at one of its own limits says verdict.KindLimitExceeded, one
	// that met content it could not decrypt verdict.KindEncrypted; Detail
	// then says which, and Threat is empty.
	Kind   verdict.Kind
	Detail string
	// Format is the archive format an encrypted detection was about, ""
	// when unknown or not an archive: it lets an archive the scanner opened
	// with a password from the message explain the engine's alert.
	Format archive.Format
}

// ErrTooLarge means the engine would not take a stream this large (clamd's
// StreamMaxLength): a limit-exceeded finding, never clean. It is of kind
// engineerr.ErrLimit.
var ErrTooLarge = engineerr.Mark(errors.New("stream larger than the engine accepts"), engineerr.ErrLimit)

// Options bound and describe a scanner.
type Options struct {
	// Name goes into every verdict as the scanner's name: "avstation 0.1.0 on host".
	Name string
	// EngineTimeout bounds one engine call on one stream.
	EngineTimeout time.Duration
	// MaxDepth bounds nesting of multiparts and attached messages. The
	// walk costs the same per level however deep (no cliff): the limit
	// is there so that an absurd message ends limit-exceeded.
	MaxDepth int
	// MaxParts bounds the number of MIME parts walked in one message.
	MaxParts int
	// MaxHeaderBytes bounds the size of one part's header block.
	MaxHeaderBytes int64
	// PartMemory is how much of one decoded part is held in memory before it
	// spills to a 0600 file in SpoolDir.
	PartMemory int64
	SpoolDir   string
	// PartMemoryTotal bounds the decoded bytes all scans together hold in
	// memory; past it parts spill to SpoolDir though under PartMemory.
	PartMemoryTotal int64
	// MaxArchiveDepth bounds archives within archives (a zip in a zip is 2).
	MaxArchiveDepth int
	// MaxRatio and MaxMemberSize bound each archive member. The message
	// has budgets (newBudget): MaxExpanded bytes, and MaxRatio times its
	// size (at least 64 MiB), that all its archives and encoded files
	// expand to together, MaxMembers members with content
	// among them (empty ones, directories and links are free) and
	// MaxEngineTime of engine calls for it. When one runs out, archives
	// stop expanding and the rest is scanned.
	MaxMembers    int
	MaxRatio      float64
	MaxMemberSize int64
	MaxExpanded   int64
	MaxEngineTime time.Duration
	// TryPasswords tries words that follow "password" in the message's
	// text on its encrypted archive members.
	TryPasswords bool
	// ClamdWhole sends engines that unpack mail the whole raw message,
	// never the skeleton (skeleton.go).
	ClamdWhole bool
	// Mode says what the engines see (IceWarp's scan modes).
	Mode Mode
	// CacheEntries bounds the verdict cache; 0 turns it off.
	CacheEntries int
	// MaxEngineCalls bounds the engine calls in progress at once, over all
	// scans.
	MaxEngineCalls int
	// Clamd is what the scanner assumes of the limits of the engines that
	// unpack mail: content past them is sent on its own.
	Clamd ClamdLimits
}

// Mode is what the engines are asked about.
type Mode string

const (
	// ModeAll: the raw message, every decoded part and every archive member.
	ModeAll Mode = "all"
	// ModeAttachments: attachments and their archive members only.
	ModeAttachments Mode = "attachments"
	// ModeMessage: the raw message only (the engine parses it itself).
	ModeMessage Mode = "message"
)

// Modes lists the modes, for config checks.
var Modes = []Mode{ModeAll, ModeAttachments, ModeMessage}

// DefaultOptions are the limits a list server needs; each is documented in
// the README with its reason.
func DefaultOptions() Options {
	return Options{
		EngineTimeout:   60 * time.Second,
		MaxDepth:        128,
		MaxParts:        1000,
		MaxHeaderBytes:  256 << 10,
		PartMemory:      4 << 20,
		PartMemoryTotal: 64 << 20,
		MaxArchiveDepth: 10,
		MaxMembers:      10000,
		MaxRatio:        100,
		MaxMemberSize:   256 << 20,
		MaxExpanded:     512 << 20,
		MaxEngineTime:   60 * time.Second,
		Mode:            ModeAll,
		TryPasswords:    true,
		CacheEntries:    10000,
		MaxEngineCalls:  16,
		Clamd:           DefaultClamdLimits(),
	}
}

// Scanner scans messages with a fixed set of engines. It is safe for
// concurrent use.
type Scanner struct {
	opt     Options
	engines []Engine

	calls    chan struct{}         // a slot per engine call in progress
	memory   *spool.Memory         // decoded bytes held in memory by all scans
	verdicts *lru[verdict.Verdict] // by message
	parts    *lru[Detection]       // by engine and part

	vers versionCache
}

// New returns a scanner asking engines, in order, about every message.
func New(opt Options, engines ...Engine) *Scanner {
	d := DefaultOptions()
	orDefault(&opt.EngineTimeout, d.EngineTimeout)
	orDefault(&opt.MaxDepth, d.MaxDepth)
	orDefault(&opt.MaxParts, d.MaxParts)
	orDefault(&opt.MaxHeaderBytes, d.MaxHeaderBytes)
	orDefault(&opt.PartMemory, d.PartMemory)
	orDefault(&opt.PartMemoryTotal, d.PartMemoryTotal)
	orDefault(&opt.MaxArchiveDepth, d.MaxArchiveDepth)
	orDefault(&opt.MaxMembers, d.MaxMembers)
	orDefault(&opt.MaxRatio, d.MaxRatio)
	orDefault(&opt.MaxMemberSize, d.MaxMemberSize)
	orDefault(&opt.MaxExpanded, d.MaxExpanded)
	orDefault(&opt.MaxEngineTime, d.MaxEngineTime)
	orDefault(&opt.MaxEngineCalls, d.MaxEngineCalls)
	orDefault(&opt.Clamd.MaxRecursion, d.Clamd.MaxRecursion)
	orDefault(&opt.Clamd.MaxFiles, d.Clamd.MaxFiles)
	orDefault(&opt.Clamd.MaxFileSize, d.Clamd.MaxFileSize)
	orDefault(&opt.Clamd.MaxScanSize, d.Clamd.MaxScanSize)
	if opt.Mode == "" {
		opt.Mode = d.Mode
	}
	return &Scanner{opt: opt, engines: engines, calls: make(chan struct{}, opt.MaxEngineCalls), memory: spool.NewMemory(opt.PartMemoryTotal),
		verdicts: newLRU[verdict.Verdict](opt.CacheEntries), parts: newLRU[Detection](opt.CacheEntries)}
}

// newBuffer holds one decoded part or member: in memory up to PartMemory
// and while all scans' parts together stay under PartMemoryTotal, else on
// disk. An in-process milter has as many scans at once as SMTP sessions.
func (s *Scanner) newBuffer() *spool.Buffer {
	return spool.NewShared(s.opt.SpoolDir, s.opt.PartMemory, s.memory)
}

// orDefault sets a limit left at zero (or below) to its default.
func orDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// PanicError is a panic recovered from a scan: in the walk, a decoder or
// an engine called by it, or a goroutine an engine started for the call.
// There is no verdict; callers treat it as a failed scan (station-failure,
// tempfail) of this message only, and log its Stack once.
type PanicError = panics.Error

// Scan scans the size bytes of the raw message in r (headers and body, CRLF).
// Findings, including engine failures, are in the verdict; the error is for
// a cancelled ctx, or r or the spool failing, when there is no verdict to
// give, or a *PanicError.
//
// A panic in code Scan runs in its own goroutine is recovered (engines
// recover their own goroutines, see internal/panics): a bug or a hostile
// input in one decoder must not take every other message's scan down with
// the daemon.
func (s *Scanner) Scan(ctx context.Context, r io.ReaderAt, size int64) (v *verdict.Verdict, err error) {
	defer panics.Catch(&err)
	return s.scan(ctx, r, size)
}

func (s *Scanner) scan(ctx context.Context, r io.ReaderAt, size int64) (*verdict.Verdict, error) {
	start := time.Now()
	if len(s.engines) == 0 {
		v := &verdict.Verdict{Scanner: s.opt.Name}
		v.Add(verdict.Finding{Kind: verdict.KindScanError, Detail: "no engine configured"})
		return v, nil
	}
	versions := s.Versions(ctx)
	key, err := s.cacheKey(ctx, r, size, versions)
	if err != nil {
		return nil, err
	}
	if v, ok := s.verdicts.get(key); ok {
		v.Cached, v.Duration = true, time.Since(start)
		return &v, nil
	}
	v := &verdict.Verdict{Scanner: s.opt.Name}
	st := &scanState{v: v, budget: newBudget(s.opt, size), versions: versionsKey(versions)}
	ix, err := s.newIndex(r, size)
	if err != nil {
		return nil, fmt.Errorf("reading message: %w", err)
	}
	defer ix.close()
	st.ix = ix
	// The whole raw message goes to every engine too: clamd parses mail
	// itself and may see what a MIME walk disagrees about. It goes first
	// to the engines that unpack mail, so that they are sent only the
	// parts they cannot have seen (coverage.go); its findings are recorded
	// after the parts', so that the finding a reject names is the one with
	// a file name.
	if err := s.scanRawFirst(ctx, st, r, size); err != nil {
		return nil, err
	}
	w := &walker{verdict: v, visit: func(p *leaf) error {
		return s.scanPart(ctx, st, p)
	}}
	if err := w.walk(ix); err != nil {
		return nil, err
	}
	if err := s.scanRawLast(ctx, st, r, size); err != nil {
		return nil, err
	}
	v.Engines = versions
	v.Settle()
	v.Duration = time.Since(start)
	s.putVerdict(key, v)
	return v, nil
}

// Caches reports whether verdicts are cached (cache_entries above 0): a
// caller that has the message's SHA-256 then saves a read of it by
// passing it (WithDigest).
func (s *Scanner) Caches() bool { return s.verdicts != nil }

// cacheKey is the message's SHA-256 with the mode and every engine's
// signature version; "" (do not cache) when an engine could not say its
// version, since then a database update could not be told apart.
func (s *Scanner) cacheKey(ctx context.Context, r io.ReaderAt, size int64, versions []verdict.Engine) (string, error) {
	vk := versionsKey(versions)
	if s.verdicts == nil || vk == "" {
		return "", nil
	}
	sum := digestFrom(ctx)
	if sum == "" {
		var err error
		if sum, err = digest.SHA256Hex(r, size); err != nil {
			return "", fmt.Errorf("reading message: %w", err)
		}
	}
	return string(s.opt.Mode) + "|" + vk + "|" + sum, nil
}

// versionsKey names the engines' signature state; "" when one is unknown.
func versionsKey(versions []verdict.Engine) string {
	var b strings.Builder
	for _, e := range versions {
		if e.SignatureVersion == "" && e.Version == "" {
			return ""
		}
		fmt.Fprintf(&b, "%s %s %s %d|", e.Name, e.Version, e.SignatureVersion, e.SignatureTime.Unix())
	}
	return b.String()
}

// EngineNames lists the engines' names, in the order they are asked.
func (s *Scanner) EngineNames() []string {
	out := make([]string, len(s.engines))
	for i, e := range s.engines {
		out[i] = e.Name()
	}
	return out
}

// versionTTL is how long engine versions are reused before they are asked
// again, in the background: signatures change a few times a day. After an
// incomplete answer (an engine down) the next try comes sooner.
const (
	versionTTL        = time.Minute
	versionRetry      = 10 * time.Second
	versionCallBudget = 5 * time.Second // one engine's VERSION
)

// versionCache holds the last known versions. Its mutex is never held
// across an engine call: a refresh runs in its own goroutine, one at a time.
type versionCache struct {
	mu      sync.Mutex
	known   []verdict.Engine // nil until the first refresh ends
	fresh   time.Time        // known is reused until then
	running chan struct{}    // closed when the refresh in progress ends; nil when none
}

// Versions reports each engine's name and signature version. It answers
// from the last known versions at once and refreshes them in the
// background when they are old; only before the first refresh has ended
// does it wait (for that one, or until ctx is done). An engine that never
// said its version is listed by name only; one that fails later keeps its
// last known version.
func (s *Scanner) Versions(ctx context.Context) []verdict.Engine {
	known, wait := s.knownVersions()
	if known != nil {
		return known
	}
	select {
	case <-wait:
	case <-ctx.Done():
	}
	known, _ = s.knownVersions()
	if known == nil {
		return s.namesOnly()
	}
	return known
}

// KnownVersions is Versions without any wait: before the first refresh has
// ended it lists the engines by name only. For /metrics, which must answer
// at once whatever the engines do.
func (s *Scanner) KnownVersions() []verdict.Engine {
	if known, _ := s.knownVersions(); known != nil {
		return known
	}
	return s.namesOnly()
}

// knownVersions returns the last known versions (nil: none yet) and starts
// a refresh when they are old and none runs; wait is closed when the
// refresh in progress, if any, ends.
func (s *Scanner) knownVersions() (known []verdict.Engine, wait <-chan struct{}) {
	vc := &s.vers
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if (vc.known == nil || !time.Now().Before(vc.fresh)) && vc.running == nil {
		vc.running = make(chan struct{})
		go s.refreshVersions(vc.known, vc.running)
	}
	return vc.known, vc.running
}

// refreshVersions asks every engine at once for its version, each within
// versionCallBudget, and stores the answers; prev supplies the version of an
// engine that fails now.
func (s *Scanner) refreshVersions(prev []verdict.Engine, done chan struct{}) {
	out := make([]verdict.Engine, len(s.engines))
	ok := make([]bool, len(s.engines))
	var wg sync.WaitGroup
	for i, e := range s.engines {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), versionCallBudget)
			defer cancel()
			info, err := panics.Call(func() (verdict.Engine, error) { return e.Version(ctx) })
			switch {
			case err == nil:
				out[i], ok[i] = info, true
			case i < len(prev) && prev[i].Name == e.Name():
				out[i] = prev[i]
			default:
				out[i] = verdict.Engine{Name: e.Name()}
			}
		})
	}
	wg.Wait()
	ttl := versionTTL
	if slices.Contains(ok, false) {
		ttl = versionRetry
	}
	vc := &s.vers
	vc.mu.Lock()
	vc.known, vc.fresh, vc.running = out, time.Now().Add(ttl), nil
	vc.mu.Unlock()
	close(done)
}

func (s *Scanner) namesOnly() []verdict.Engine {
	out := make([]verdict.Engine, len(s.engines))
	for i, e := range s.engines {
		out[i] = verdict.Engine{Name: e.Name()}
	}
	return out
}
