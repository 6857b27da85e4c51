// Package scanner is everything the station does to a message: it walks the
// MIME structure, decodes each part and asks every engine about the raw
// message and each decoded part. It returns a verdict (data) and knows
// nothing of actions or of the MTA. avmilter imports it to scan in-process
// when no station is configured.
package scanner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

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
}

// ErrTooLarge means the engine would not take a stream this large (clamd's
// StreamMaxLength): a limit-exceeded finding, never clean.
var ErrTooLarge = errors.New("stream larger than the engine accepts")

// Options bound and describe a scanner.
type Options struct {
	// Name goes into every verdict as the scanner's name: "avstation 0.1.0 on host".
	Name string
	// EngineTimeout bounds one engine call on one stream.
	EngineTimeout time.Duration
	// MaxDepth bounds nesting of multiparts and attached messages.
	MaxDepth int
	// MaxParts bounds the number of MIME parts walked in one message.
	MaxParts int
	// MaxHeaderBytes bounds the size of one part's header block.
	MaxHeaderBytes int64
	// PartMemory is how much of one decoded part is held in memory before it
	// spills to a 0600 file in SpoolDir.
	PartMemory int64
	SpoolDir   string
	// Mode says what the engines see (IceWarp's scan modes).
	Mode Mode
	// CacheEntries bounds the verdict cache; 0 turns it off.
	CacheEntries int
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
		EngineTimeout:  60 * time.Second,
		MaxDepth:       20,
		MaxParts:       1000,
		MaxHeaderBytes: 256 << 10,
		PartMemory:     4 << 20,
		Mode:           ModeAll,
		CacheEntries:   10000,
	}
}

// Scanner scans messages with a fixed set of engines. It is safe for
// concurrent use.
type Scanner struct {
	opt     Options
	engines []Engine

	cache *cache

	mu        sync.Mutex
	versions  []verdict.Engine
	versionAt time.Time
}

// New returns a scanner asking engines, in order, about every message.
func New(opt Options, engines ...Engine) *Scanner {
	d := DefaultOptions()
	if opt.EngineTimeout <= 0 {
		opt.EngineTimeout = d.EngineTimeout
	}
	if opt.MaxDepth <= 0 {
		opt.MaxDepth = d.MaxDepth
	}
	if opt.MaxParts <= 0 {
		opt.MaxParts = d.MaxParts
	}
	if opt.MaxHeaderBytes <= 0 {
		opt.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if opt.PartMemory <= 0 {
		opt.PartMemory = d.PartMemory
	}
	if opt.Mode == "" {
		opt.Mode = d.Mode
	}
	return &Scanner{opt: opt, engines: engines, cache: newCache(opt.CacheEntries)}
}

// Scan scans the size bytes of the raw message in r (headers and body, CRLF).
// Findings, including engine failures, are in the verdict; the error is for
// a cancelled ctx only, when there is no verdict to give.
func (s *Scanner) Scan(ctx context.Context, r io.ReaderAt, size int64) (*verdict.Verdict, error) {
	start := time.Now()
	if len(s.engines) == 0 {
		v := &verdict.Verdict{Scanner: s.opt.Name}
		v.Add(verdict.Finding{Kind: verdict.KindScanError, Detail: "no engine configured"})
		return v, nil
	}
	versions := s.Versions(ctx)
	key, err := s.cacheKey(r, size, versions)
	if err != nil {
		return nil, err
	}
	if v, ok := s.cache.get(key); ok {
		v.Cached, v.Duration = true, time.Since(start)
		return v, nil
	}
	v := &verdict.Verdict{Scanner: s.opt.Name}
	w := &walker{opt: s.opt, verdict: v, visit: func(p *leaf) error {
		return s.scanPart(ctx, v, p)
	}}
	if err := w.walk(io.NewSectionReader(r, 0, size)); err != nil {
		return nil, err
	}
	// The whole raw message goes to every engine too: clamd parses mail
	// itself and may see what a MIME walk disagrees about. Parts go first so
	// that the finding a reject names is the one with a file name.
	if s.opt.Mode != ModeAttachments {
		raw := &leaf{path: "", contentType: "message/rfc822"}
		for _, e := range s.engines {
			if err := s.scanWith(ctx, v, e, raw, io.NewSectionReader(r, 0, size)); err != nil {
				return nil, err
			}
		}
	}
	v.Engines = versions
	v.Settle()
	v.Duration = time.Since(start)
	if key != "" {
		s.cache.put(key, v)
	}
	return v, nil
}

// cacheKey is the message's SHA-256 with the mode and every engine's
// signature version; "" (do not cache) when an engine could not say its
// version, since then a database update could not be told apart.
func (s *Scanner) cacheKey(r io.ReaderAt, size int64, versions []verdict.Engine) (string, error) {
	if s.cache == nil {
		return "", nil
	}
	var b strings.Builder
	b.WriteString(string(s.opt.Mode))
	for _, e := range versions {
		if e.SignatureVersion == "" && e.Version == "" {
			return "", nil
		}
		fmt.Fprintf(&b, "|%s %s %s %d", e.Name, e.Version, e.SignatureVersion, e.SignatureTime.Unix())
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, size)); err != nil {
		return "", fmt.Errorf("reading message: %w", err)
	}
	return b.String() + "|" + hex.EncodeToString(h.Sum(nil)), nil
}

// scanPart holds one decoded part in a spool buffer, so that each engine
// reads it in full, and scans it.
func (s *Scanner) scanPart(ctx context.Context, v *verdict.Verdict, p *leaf) error {
	buf := spool.New(s.opt.SpoolDir, s.opt.PartMemory)
	defer buf.Close()
	_, err := io.Copy(spoolWriter{buf}, p.body)
	v.Manifest = append(v.Manifest, verdict.Part{Path: p.path, FileName: p.fileName, ContentType: p.contentType, Size: buf.Size()})
	if err != nil {
		var spoolErr *spoolError
		if errors.As(err, &spoolErr) || ctx.Err() != nil {
			return err
		}
		// A decoding error: scan what was decoded and say the rest is unreadable.
		detail := "decoding " + p.encoding + ": " + err.Error()
		if errors.Is(err, io.ErrUnexpectedEOF) {
			detail = "truncated: the part ends without its closing boundary"
		}
		v.Add(verdict.Finding{Path: p.path, FileName: p.fileName, ContentType: p.contentType,
			Kind: verdict.KindUnscannable, Detail: detail})
	}
	if s.opt.Mode == ModeMessage || (s.opt.Mode == ModeAttachments && !p.attachment) {
		return nil // listed in the manifest, not sent to the engines
	}
	for _, e := range s.engines {
		if err := s.scanWith(ctx, v, e, p, buf.Reader()); err != nil {
			return err
		}
	}
	return nil
}

// spoolWriter marks errors of the spool (disk full) apart from decoding
// errors of the part: the first fail the scan, the second are findings.
type spoolWriter struct{ buf *spool.Buffer }

func (w spoolWriter) Write(p []byte) (int, error) {
	n, err := w.buf.Write(p)
	if err != nil {
		err = &spoolError{err}
	}
	return n, err
}

type spoolError struct{ err error }

func (e *spoolError) Error() string { return e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

// scanWith asks one engine about one stream and records what it says.
func (s *Scanner) scanWith(ctx context.Context, v *verdict.Verdict, e Engine, p *leaf, r io.Reader) error {
	ectx, cancel := context.WithTimeout(ctx, s.opt.EngineTimeout)
	defer cancel()
	d, err := e.Scan(ectx, r)
	f := verdict.Finding{Path: p.path, FileName: p.fileName, ContentType: p.contentType, Engine: e.Name()}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("scan cancelled: %w", ctx.Err())
	case errors.Is(err, ErrTooLarge):
		f.Kind, f.Detail = verdict.KindLimitExceeded, e.Name()+": "+err.Error()
	case err != nil:
		f.Kind, f.Detail = verdict.KindScanError, err.Error()
	case d.Found:
		f.Kind, f.Threat = verdict.KindVirus, d.Threat
	default:
		return nil
	}
	v.Add(f)
	return nil
}

// versionTTL is how long engine versions are reused: asking costs a round
// trip per scan, and signatures change a few times a day.
const versionTTL = time.Minute

// Versions reports each engine's name and signature version, cached briefly.
// An engine that cannot say is listed by name only.
func (s *Scanner) Versions(ctx context.Context) []verdict.Engine {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.versions != nil && time.Since(s.versionAt) < versionTTL {
		return s.versions
	}
	out := make([]verdict.Engine, 0, len(s.engines))
	complete := true
	for _, e := range s.engines {
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := e.Version(ectx)
		cancel()
		if err != nil {
			info, complete = verdict.Engine{Name: e.Name()}, false
		}
		out = append(out, info)
	}
	if complete {
		s.versions, s.versionAt = out, time.Now()
	}
	return out
}
