// Package archive opens the archives found in mail parts (zip, tar, gzip,
// bzip2, xz, 7z, rar) and hands every member to a callback with a reader of
// its expanded content. It never decides what is a virus: the scanner gives
// each member to the engines and recurses into members that are archives.
//
// Nothing it cannot examine is passed over in silence: encrypted members,
// corrupt or truncated archives, unsupported methods, overlapping zip
// entries and names that escape the archive are each a Problem, and the
// limits (members, ratio, member size, the message's expanded-bytes budget)
// are enforced while reading, so a bomb is stopped early and memory stays
// bounded whatever the archive.
package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Format is an archive format.
type Format string

const (
	Zip      Format = "zip"
	Tar      Format = "tar"
	Gzip     Format = "gzip"
	Bzip2    Format = "bzip2"
	Xz       Format = "xz"
	SevenZip Format = "7z"
	Rar      Format = "rar"
)

// Formats lists every format Walk opens.
var Formats = []Format{Zip, Tar, Gzip, Bzip2, Xz, SevenZip, Rar}

// HeadSize is how many leading bytes Detect wants: tar's magic is at 257.
const HeadSize = 512

var (
	magicZip      = []byte("PK\x03\x04")
	magicZipEmpty = []byte("PK\x05\x06")
	magicZipSpan  = []byte("PK\x07\x08") // split/spanned marker before the first local header
	magicGzip     = []byte{0x1f, 0x8b}
	magicXz       = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magic7z       = []byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}
	magicRar4     = []byte("Rar!\x1a\x07\x00")
	magicRar5     = []byte("Rar!\x1a\x07\x01\x00")
)

// Detect names the archive format of content from its first bytes (pass at
// least HeadSize of them when the content is that long) and, only as a
// tiebreak, the file name: a pre-POSIX tar has no magic, so a name ending
// in .tar with a valid header checksum is tar. ok is false when content is
// not an archive this package opens. It looks at offset 0 only: Locate
// also finds prefixed and self-extracting archives.
func Detect(head []byte, name string) (Format, bool) {
	switch {
	case bytes.HasPrefix(head, magicZip), bytes.HasPrefix(head, magicZipEmpty),
		bytes.HasPrefix(head, magicZipSpan) && bytes.HasPrefix(head[4:], magicZip):
		return Zip, true
	case bytes.HasPrefix(head, magic7z):
		return SevenZip, true
	case bytes.HasPrefix(head, magicRar4), bytes.HasPrefix(head, magicRar5):
		return Rar, true
	case bytes.HasPrefix(head, magicXz):
		return Xz, true
	case len(head) >= 3 && bytes.HasPrefix(head, magicGzip) && head[2] == 8: // CM 8 = deflate, RFC 1952 2.3.1
		return Gzip, true
	case isBzip2(head):
		return Bzip2, true
	case len(head) >= 262 && string(head[257:262]) == "ustar": // POSIX and GNU
		return Tar, true
	case strings.HasSuffix(strings.ToLower(name), ".tar") && len(head) >= 512 && tarChecksumOK(head[:512]):
		return Tar, true
	}
	return "", false
}

// isBzip2 checks "BZh", a block size digit and the magic of the first block
// (or of the end of stream, for an empty stream).
func isBzip2(h []byte) bool {
	if len(h) < 10 || string(h[:3]) != "BZh" || h[3] < '1' || h[3] > '9' {
		return false
	}
	m := string(h[4:10])
	return m == "\x31\x41\x59\x26\x53\x59" || m == "\x17\x72\x45\x38\x50\x90"
}

// tarChecksumOK verifies a tar header block's checksum (the octal field at
// 148, computed with the field itself as spaces).
func tarChecksumOK(b []byte) bool {
	field := strings.Trim(string(b[148:156]), " \x00")
	want, err := strconv.ParseUint(field, 8, 32)
	if err != nil || field == "" {
		return false
	}
	var sum uint64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += uint64(c)
	}
	return sum == want
}

// StreamName is the name of the single member of a gzip, bzip2 or xz file
// called fileName: the name without its compression suffix (.tgz and .tbz2
// become .tar), or "data". Walk cannot know the file name; the caller can
// use this in place of the name Walk gives (the gzip header's, or "data").
func StreamName(fileName string) string {
	base := path.Base(strings.ReplaceAll(fileName, "\\", "/"))
	lower := strings.ToLower(base)
	for _, s := range []struct{ suffix, repl string }{
		{".tgz", ".tar"}, {".tbz2", ".tar"}, {".tbz", ".tar"}, {".txz", ".tar"},
		{".gz", ""}, {".bz2", ""}, {".xz", ""},
	} {
		if strings.HasSuffix(lower, s.suffix) && len(base) > len(s.suffix) {
			return base[:len(base)-len(s.suffix)] + s.repl
		}
	}
	return "data"
}

// Limits bound the walk of one archive. A zero field means no limit.
type Limits struct {
	// MaxRatio bounds expanded bytes over compressed bytes of one member
	// (for 7z and solid rar, of the compressed stream read while reading
	// it). It is checked as the member is read, against the compressed
	// bytes consumed so far, once the member has expanded past RatioFloor:
	// a 1000:1 bomb is stopped after about a megabyte. Not for tar, which
	// does not compress.
	MaxRatio float64
	// MaxMemberSize bounds the expanded bytes of one member.
	MaxMemberSize int64
	// Passwords are candidate passwords, found in the message's text, to
	// try on encrypted members, in order; empty and repeated ones are
	// dropped and at most MaxPasswordTries are tried per archive. A
	// member one of them opens is visited decrypted, with Member.Password
	// set, and is no problem. Zip passwords are tried as their UTF-8
	// bytes. The passwords never appear in a Problem or an error.
	Passwords []string
}

// RatioFloor is how far a member expands before MaxRatio applies: a
// small member of repeated bytes compresses very well and is harmless.
const RatioFloor = 1 << 20

// Member is one entry of an archive.
type Member struct {
	// Name is the path inside the archive as stored, with control
	// characters and invalid UTF-8 replaced for display.
	Name string
	// Size is the declared expanded size, -1 when unknown.
	Size int64
	// Encrypted is a password-protected entry; its content is nil unless
	// Password is set.
	Encrypted bool
	// LocalMismatch: a zip entry whose local header disagrees with its
	// central directory entry (zipLocalDisagrees), walked by the latter:
	// a reader that goes by local headers reads other content.
	LocalMismatch bool
	// UncommonCoder: a member of a 7z archive that uses a coder outside
	// common7zCoders (Delta), which not every reader decodes.
	UncommonCoder bool
	// Password is an encrypted entry opened with one of Limits.Passwords:
	// its content is the decrypted, expanded data. Which password is not
	// said: the caller can note "opened with a password from the message".
	Password bool
	// Unverified is an encrypted entry that no candidate opened cleanly,
	// handed on with what the first candidate whose only fault was the
	// integrity check at the end decrypts it to (see unlock): maybe
	// garbage, maybe the payload of a checksum made wrong on purpose. It
	// is reported Encrypted; its content is there to be scanned.
	Unverified bool
}

// ProblemKind is what is wrong with an archive or a member.
type ProblemKind string

const (
	Encrypted     ProblemKind = "encrypted"
	Unscannable   ProblemKind = "unscannable"
	LimitExceeded ProblemKind = "limit-exceeded"
)

// Problem is something about an archive that keeps it from being fully
// examined. Each one must reach the verdict: none means clean.
type Problem struct {
	Member string // "" for the archive as a whole
	Kind   ProblemKind
	Detail string
}

// cleanName makes a stored name safe to display and log: invalid UTF-8
// becomes U+FFFD and control characters (C0, DEL, C1) become '?'.
func cleanName(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}

// escapes reports whether a stored name is absolute (/x, \x, C:x) or,
// with backslashes taken as separators, climbs out of the archive's root.
func escapes(name string) bool {
	n := strings.ReplaceAll(name, "\\", "/")
	if strings.HasPrefix(n, "/") || len(n) >= 2 && n[1] == ':' && (n[0]|0x20 >= 'a' && n[0]|0x20 <= 'z') {
		return true
	}
	c := path.Clean(n)
	return c == ".." || strings.HasPrefix(c, "../")
}

// readDetail describes a read error of the archive itself.
func readDetail(f Format, err error) string {
	if errors.Is(err, errWrongPassword) {
		return fmt.Sprintf("%s: member opened with a password from the message fails its check: %v", f, err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Sprintf("%s: truncated archive: %v", f, err)
	}
	return fmt.Sprintf("%s: corrupt archive: %v", f, err)
}

// Walk opens the archive of format f held in the size bytes of r and calls
// visit for each member, in archive order, with a reader of its expanded
// content. Directories, links and devices are not members. visit must
// read what it wants before returning; the reader enforces MaxMemberSize,
// MaxRatio and the Budget (a member's first byte books it against the
// budget's members, so empty ones are free) and returns an error wrapping
// *ErrLimit past them. Walk does not recurse into archives
// inside archives: the caller does, with the same Budget.
//
// Encrypted members: when one of lim.Passwords opens the member (see
// Limits.Passwords; zip ZipCrypto and AES, 7z AES with or without
// encrypted headers, rar), visit gets it decrypted with Member.Encrypted
// and Member.Password set and no problem is recorded. The password is
// verified before visit where the format allows it and always at the end
// of the member; a wrong one found only at the end (after more than
// probeSize bytes) makes the member Unscannable "wrong password (CRC
// mismatch)" and what visit read was garbage. Otherwise: a
// Problem{Encrypted} naming the member and, where the format says, the
// method; visit is still called with Member.Encrypted set and a nil
// content so that the caller lists it.
//
// Problems of the archive itself are returned, never skipped in silence:
//   - corrupt or truncated data, unsupported methods, overlapping zip
//     entries, names escaping the archive: Unscannable. A read error met
//     while visit reads a member is recorded once visit returns, whether
//     or not visit returned it; when visit returns it, it is not an error
//     of Walk. The walk goes on with the next member where the format
//     allows (zip, 7z), else it stops (tar, rar, streams).
//   - a member with content beyond the Budget's members: LimitExceeded
//     "max_members N for the message exceeded" for it, and the walk stops.
//   - visit returns an error wrapping *ErrLimit: LimitExceeded for that
//     member. For max_ratio and max_member_size the walk goes on with the
//     next member; for max_expanded_bytes it stops.
//   - whenever the Budget runs out, whoever noticed (another walk, the
//     caller's Stop), the walk stops after the current member, recording
//     LimitExceeded for the archive when entries remain; a Walk started
//     with the Budget already spent records that and opens nothing.
//
// The error is visit's own error or ctx's, returned as is; ctx is checked
// between members and by the content reader.
func Walk(ctx context.Context, f Format, r io.ReaderAt, size int64, lim Limits, budget *Budget,
	visit func(m Member, content io.Reader) error) ([]Problem, error) {
	w := &walker{ctx: ctx, format: f, lim: lim, budget: budget, visit: visit}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if why := budget.Why(); why != nil {
		w.problem("", LimitExceeded, why.Error())
		return w.problems, nil
	}
	var err error
	switch f {
	case Zip:
		err = w.zip(r, size)
	case Tar:
		err = w.tar(io.NewSectionReader(r, 0, size))
	case Gzip, Bzip2, Xz:
		err = w.stream(r, size)
	case SevenZip:
		err = w.sevenZip(r, size)
	case Rar:
		err = w.rar(r, size)
	default:
		w.problem("", Unscannable, fmt.Sprintf("unknown archive format %q", string(f)))
	}
	if errors.Is(err, errStop) {
		err = nil
	}
	return w.problems, err
}

// errStop ends a walk early without an error for the caller.
var errStop = errors.New("walk stopped")

type walker struct {
	ctx      context.Context
	format   Format
	lim      Limits
	budget   *Budget
	visit    func(Member, io.Reader) error
	problems []Problem
}

func (w *walker) problem(member string, k ProblemKind, detail string) {
	w.problems = append(w.problems, Problem{Member: member, Kind: k, Detail: detail})
}

// next is called before each entry, directories included: it checks ctx
// and the Budget, which another walk or the caller may have spent. A
// non-nil error ends the walk. Entries as such are not limited: those
// without content cost no more than reading their headers.
func (w *walker) next() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if why := w.budget.Why(); why != nil {
		// The archive has more entries than the budget left: say so,
		// once (the member that ran it out may have said it already).
		d := why.Error()
		if n := len(w.problems); n == 0 || w.problems[n-1].Kind != LimitExceeded || w.problems[n-1].Detail != d {
			w.problem("", LimitExceeded, d)
		}
		return errStop
	}
	return nil
}

// checkName records a name that escapes the archive; the member is still
// scanned.
func (w *walker) checkName(stored, display string) {
	if escapes(stored) {
		w.problem(display, Unscannable, fmt.Sprintf("member name %s escapes the archive", display))
	}
}

// encrypted records an encrypted member and lists it through visit.
func (w *walker) encrypted(m Member, method string) error {
	m.Encrypted = true
	w.problem(m.Name, Encrypted, w.encryptedDetail(m, method))
	return w.afterVisit(m, nil, w.visit(m, nil))
}

func (w *walker) encryptedDetail(m Member, method string) string {
	detail := fmt.Sprintf("%s: member %s is encrypted", w.format, m.Name)
	if method != "" {
		detail += " (" + method + ")"
	}
	return detail
}

// memberHook sees each member as a decoder hands it on. Only avtest
// builds set it (hook_avtest.go), to make a decoder panic as a bug would.
var memberHook func(Member)

// member hands one member's content to visit through the limiting reader.
// consumed, when not nil, tells how many compressed bytes the member has
// used so far, for MaxRatio. A read error is recorded as Unscannable; the
// returned error is errStop when the walk must end, or visit's error.
func (w *walker) member(m Member, content io.Reader, consumed func() int64) (readErr error, err error) {
	if memberHook != nil {
		memberHook(m)
	}
	mr := &memberReader{ctx: w.ctx, r: content, lim: w.lim, budget: w.budget, consumed: consumed}
	err = w.afterVisit(m, mr, w.visit(m, mr))
	return mr.readErr, err
}

func (w *walker) afterVisit(m Member, mr *memberReader, verr error) error {
	var lim *ErrLimit
	switch {
	case mr != nil && mr.readErr != nil && (verr == nil || errors.Is(verr, mr.readErr)):
		w.problem(m.Name, Unscannable, readDetail(w.format, mr.readErr))
		verr = nil
	case errors.As(verr, &lim):
		w.problem(m.Name, LimitExceeded, lim.Error())
		verr = nil
	case verr != nil:
		return verr
	case mr != nil && errors.As(mr.limitErr, &lim) && lim.Message:
		// visit let a budget of the message go by: it is still recorded.
		w.problem(m.Name, LimitExceeded, lim.Error())
	}
	return nil // next stops the walk before another entry if the budget ran out
}

// memberReader is the content reader visit gets.
type memberReader struct {
	ctx      context.Context
	r        io.Reader
	lim      Limits
	budget   *Budget
	consumed func() int64
	n        int64
	limitErr error // sticky
	readErr  error // sticky: the archive's data is bad
}

func (m *memberReader) Read(p []byte) (int, error) {
	if m.limitErr != nil {
		return 0, m.limitErr
	}
	if m.readErr != nil {
		return 0, m.readErr
	}
	if err := m.ctx.Err(); err != nil {
		return 0, err
	}
	limit := m.lim.MaxMemberSize
	if limit > 0 && int64(len(p)) > limit-m.n+1 {
		p = p[:limit-m.n+1] // one byte past the limit is enough to know
	}
	n, err := m.r.Read(p)
	if n > 0 && m.n == 0 {
		// Its first byte makes it a member with content.
		if merr := m.budget.TakeMember(); merr != nil {
			m.limitErr = merr
			return 0, merr
		}
	}
	if limit > 0 && m.n+int64(n) > limit {
		n = int(limit - m.n)
		m.limitErr = &ErrLimit{Limit: "max_member_size", Value: limit}
	}
	ok, fits := m.budget.take(int64(n))
	if !fits {
		n = int(ok)
		m.limitErr = m.budget.bytesErr()
	}
	m.n += int64(n)
	if m.limitErr == nil && m.consumed != nil && m.lim.MaxRatio > 0 && m.n > RatioFloor {
		c := max(m.consumed(), 1)
		if float64(m.n) > m.lim.MaxRatio*float64(c) {
			m.limitErr = &ErrLimit{Limit: "max_ratio", Value: int64(m.lim.MaxRatio)}
		}
	}
	if m.limitErr != nil {
		return n, m.limitErr
	}
	if err != nil && err != io.EOF && m.ctx.Err() == nil {
		m.readErr = err
	}
	return n, err
}

// counter counts bytes read through a ReaderAt or Reader, for MaxRatio.
type counter struct {
	mu sync.Mutex
	n  int64
}

func (c *counter) add(n int) {
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
}

func (c *counter) get() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// since returns a function telling how many bytes were counted after now.
func (c *counter) since() func() int64 {
	start := c.get()
	return func() int64 { return c.get() - start }
}

type countingReaderAt struct {
	r io.ReaderAt
	c *counter
}

func (r countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.r.ReadAt(p, off)
	r.c.add(n)
	return n, err
}

type countingReader struct {
	r io.Reader
	c *counter
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.c.add(n)
	return n, err
}
