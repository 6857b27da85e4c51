package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/avstation/avstation/internal/digest"
	"github.com/avstation/avstation/scanner/archive"
	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
)

// item is one thing examined: a decoded MIME part or an archive member.
type item struct {
	path        string // "2", "2/invoice.zip/inner.7z/doc.exe"
	fileName    string
	fileNames   []string // of a MIME part: every name it carries
	contentType string
	depth       int  // archive nesting below the MIME part
	scan        bool // sent to the engines (the scan mode decides)
	decrypted   bool // an encrypted member opened with a password from the message
	// named: the path already ends in the item's own name (an archive
	// member, a file decoded from a text), so members of it go below it.
	named bool
	// level is its nesting as clamd counts it (MIME and archive levels);
	// unseen: clamd's raw scan cannot have reached it (coverage.go).
	level  int
	unseen bool
	// uuPart: a MIME part whose Content-Transfer-Encoding is uuencode,
	// which readers decode (Python's email package takes any begin line):
	// its files are found as in a text.
	uuPart bool
	// cut: an attachment whose body the raw scan was not sent (the
	// skeleton, skeleton.go): it is sent decoded, and what is inside it is
	// covered by that scan as it was by the raw one.
	cut bool
}

// scanState is what the items of one message share.
type scanState struct {
	v        *verdict.Verdict
	budget   *archive.Budget // what all its archives may cost (budget.go)
	engine   time.Duration   // spent in engine calls so far
	versions string          // engines' signature state, for the part cache; "" off
	// passwords are candidates found in the message's text, tried on
	// encrypted archive members: looked for when the first archive opens
	// (most mail has none), in the index ix.
	passwords []string
	lookedUp  bool
	ix        *index
	// opened lists the archives whose encrypted members were opened with
	// one of the passwords.
	opened []openedArchive
	raw    rawCoverage
}

// passwordsOf is the message's candidate passwords, found the first time
// they are asked for; none unless try_passwords is on.
func (s *Scanner) passwordsOf(st *scanState) []string {
	if !st.lookedUp && s.opt.TryPasswords && s.opt.Mode != ModeMessage {
		st.passwords = passwordCandidates(st.ix)
	}
	st.lookedUp = true
	return st.passwords
}

// openedArchive is an archive, by path, with members decrypted.
type openedArchive struct {
	path   string
	format archive.Format
}

// scanPart holds one decoded MIME part in a spool buffer, so that it can
// be opened as an archive and read by each engine, and examines it.
func (s *Scanner) scanPart(ctx context.Context, st *scanState, p *leaf) error {
	buf := s.newBuffer()
	defer buf.Close()
	buf.Grow(p.size)
	_, err := io.Copy(spoolWriter{buf}, p.body)
	it := item{path: p.path, fileName: p.fileName, fileNames: p.fileNames, contentType: p.contentType,
		scan: s.opt.Mode == ModeAll || (s.opt.Mode == ModeAttachments && p.attachment), level: mimeLevel(p.path),
		// clamd 1.4.6 does not decode a base64 message/rfc822 that is a
		// message's body (TestClamdCoverageAttacks); in a multipart it
		// does, but which reader decodes what is a guess: send.
		unseen: p.inDecoded || st.raw.misread(p.path), cut: st.raw.skeleton != nil && st.raw.skeleton.cut[p.path], uuPart: uuEncodings[p.encoding]}
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
		st.v.Add(verdict.Finding{Path: p.path, FileName: p.fileName, ContentType: p.contentType,
			Kind: verdict.KindUnscannable, Detail: detail})
	}
	return s.examine(ctx, st, it, buf)
}

// examine looks at one item's content: encrypted documents, archive
// members (each examined in turn, deeper first, so that a finding names
// the innermost file), then the engines on the content itself. Every item
// is listed in the manifest.
func (s *Scanner) examine(ctx context.Context, st *scanState, it item, buf *spool.Buffer) error {
	entry := verdict.Part{Path: it.path, FileName: it.fileName, FileNames: manifestNames(it.fileNames), ContentType: it.contentType, Size: buf.Size(),
		Encrypted: it.decrypted, Decrypted: it.decrypted}
	if kind, enc := archive.EncryptedDocument(buf, buf.Size()); enc {
		entry.Encrypted = true
		st.v.Add(verdict.Finding{Path: it.path, FileName: it.fileName, ContentType: it.contentType,
			Kind: verdict.KindEncrypted, Detail: "encrypted " + kind + " document"})
	}
	st.v.Manifest = append(st.v.Manifest, entry)
	s.account(st, &it, buf.Size())
	// A cut attachment goes to the engines that unpack first, as the raw
	// message does: its members are then sent only if it was not clean,
	// so that the finding names the member. Its own answers are recorded
	// after theirs.
	first, err := s.scanCutFirst(ctx, st, &it, buf)
	if err != nil {
		return err
	}
	if s.opt.Mode != ModeMessage {
		if err := s.openArchive(ctx, st, it, buf); err != nil {
			return err
		}
		if !it.named && (isText(it.contentType) || it.uuPart) {
			if err := s.openEmbedded(ctx, st, it, buf); err != nil {
				return err
			}
		}
	}
	for i, a := range first {
		if a != nil {
			s.record(st, s.engines[i], it, *a)
		}
	}
	send := make([]bool, len(s.engines))
	for i := range s.engines {
		send[i] = it.scan && first[i] == nil && st.sendTo(i, it)
	}
	if !slices.Contains(send, true) {
		return nil
	}
	sum := ""
	if s.parts != nil && st.versions != "" {
		d, err := digest.SHA256Hex(buf, buf.Size())
		if err != nil {
			return &spoolError{err}
		}
		sum = st.versions + d
	}
	for i, e := range s.engines {
		if !send[i] {
			continue
		}
		if err := s.scanCached(ctx, st, e, it, buf, sum); err != nil {
			return err
		}
	}
	return nil
}

// scanCutFirst asks the engines that unpack about a cut attachment (see
// item.cut) and returns their answers by engine index, nil for the other
// engines and for an item that is not cut. An answer that is not clean
// marks the item unseen, so that its members are sent.
func (s *Scanner) scanCutFirst(ctx context.Context, st *scanState, it *item, buf *spool.Buffer) ([]*answer, error) {
	first := make([]*answer, len(s.engines))
	if !it.cut || !it.scan {
		return first, nil
	}
	for i, e := range s.engines {
		if !unpacksMail(e) || !st.raw.covered[i] {
			continue
		}
		a, err := s.ask(ctx, st, e, buf.Reader())
		if err != nil {
			return nil, err
		}
		first[i] = &a
		if a.err != nil || a.d.Found {
			it.unseen = true
		}
	}
	return first, nil
}

// scanCached asks an engine about an item unless it answered for the same
// bytes and signatures before. Only answers are kept, never errors.
func (s *Scanner) scanCached(ctx context.Context, st *scanState, e Engine, it item, buf *spool.Buffer, sum string) error {
	key := ""
	if sum != "" {
		key = e.Name() + "|" + sum
	}
	if d, ok := s.parts.get(key); ok {
		recordDetection(st, e, it, d)
		return nil
	}
	d, ok, err := s.scanWith(ctx, st, e, it, buf.Reader())
	if ok {
		s.parts.put(key, d)
	}
	return err
}

// openArchive walks the members of an archive item, if it is one.
func (s *Scanner) openArchive(ctx context.Context, st *scanState, it item, buf *spool.Buffer) error {
	// Where unzip, 7-Zip and unrar would find one, not only at offset 0:
	// a prefixed or self-extracting archive is opened too.
	loc, ok := archive.Locate(buf, buf.Size(), it.fileName)
	if !ok {
		return nil
	}
	format := loc.Format
	// Members live under the archive's own name: 2/invoice.zip/doc.exe.
	container := it.path
	if !it.named {
		name := it.fileName
		if name == "" {
			name = "(" + string(format) + ")"
		}
		container = it.path + "/" + strings.ReplaceAll(name, "/", "_")
	}
	if it.depth+1 > s.opt.MaxArchiveDepth {
		st.v.Add(verdict.Finding{Path: container, FileName: it.fileName, Kind: verdict.KindLimitExceeded,
			Detail: fmt.Sprintf("max_archive_depth %d", s.opt.MaxArchiveDepth)})
		return nil
	}
	lim := archive.Limits{MaxRatio: s.opt.MaxRatio, MaxMemberSize: s.opt.MaxMemberSize, Passwords: s.passwordsOf(st)}
	problems, err := archive.Walk(ctx, format, io.NewSectionReader(buf, loc.Offset, loc.Size), loc.Size, lim, st.budget, func(m archive.Member, content io.Reader) error {
		child := item{path: container + "/" + m.Name, fileName: path.Base(strings.ReplaceAll(m.Name, `\`, "/")),
			depth: it.depth + 1, scan: it.scan, named: true, level: it.level + 1,
			// clamd cannot decrypt (nor tell what a password that fails the
			// integrity check gives), misses a zip with bytes before it, goes
			// by a zip's local headers and lacks 7z coders (ClamAV 1.4.6):
			// those members are sent.
			unseen: it.unseen || m.Password || m.Unverified || loc.Prefixed || m.LocalMismatch || m.UncommonCoder || !clamdOpens[format]}
		if m.Encrypted && content == nil {
			st.raw.files++
			// Walk reports it as a problem; the manifest lists it.
			st.v.Manifest = append(st.v.Manifest, verdict.Part{Path: child.path, FileName: child.fileName, Size: m.Size, Encrypted: true})
			return nil
		}
		mbuf := s.newBuffer()
		defer mbuf.Close()
		mbuf.Grow(min(m.Size, maxGrowHint))
		if _, err := io.Copy(spoolWriter{mbuf}, content); err != nil {
			var limit *archive.ErrLimit
			var spoolErr *spoolError
			switch {
			case errors.As(err, &limit), errors.As(err, &spoolErr), ctx.Err() != nil:
				return err // Walk records a limit; the others end the scan
			}
			// The member did not read to its end: a checksum that does not
			// match, corrupt or truncated data. Walk records it unscannable.
			// What was read is scanned all the same, by every engine:
			// unzip extracts such a member with a warning, and clamd, which
			// gives up on it (a zip whose CRC is off hid EICAR from clamd
			// 1.4.6), has not seen it.
			child.unseen = true
		}
		child.decrypted = m.Password
		if m.Password && (len(st.opened) == 0 || st.opened[len(st.opened)-1].path != container) {
			st.opened = append(st.opened, openedArchive{container, format})
		}
		if mbuf.Size() == 0 {
			// No content: nothing to scan, not listed (as directories);
			// but clamd counts it against its MaxFiles.
			st.raw.files++
			return nil
		}
		return s.examine(ctx, st, child, mbuf)
	})
	for _, p := range problems {
		where := container
		if p.Member != "" {
			where = container + "/" + p.Member
		}
		st.v.Add(verdict.Finding{Path: where, FileName: it.fileName, Kind: problemKind(p.Kind), Detail: p.Detail})
	}
	var spoolErr *spoolError
	if errors.As(err, &spoolErr) || ctx.Err() != nil {
		return err
	}
	if err != nil { // an error of a deeper item's engines or walk
		return err
	}
	return nil
}

func problemKind(k archive.ProblemKind) verdict.Kind {
	switch k {
	case archive.Encrypted:
		return verdict.KindEncrypted
	case archive.LimitExceeded:
		return verdict.KindLimitExceeded
	}
	return verdict.KindUnscannable
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

// ReadFrom lets io.Copy read straight into the spool's memory; an error
// of r stays a decoding error.
func (w spoolWriter) ReadFrom(r io.Reader) (int64, error) {
	er := &errRecorder{r: r}
	n, err := w.buf.ReadFrom(er)
	if err != nil && err != er.err {
		err = &spoolError{err}
	}
	return n, err
}

type errRecorder struct {
	r   io.Reader
	err error
}

func (e *errRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// maxGrowHint bounds the memory set aside for a member from the size its
// archive declares (which may lie): larger ones grow as they come.
const maxGrowHint = 256 << 10

type spoolError struct{ err error }

func (e *spoolError) Error() string { return e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

// scanWith asks one engine about one stream and records what it says. ok
// is true when the engine answered (found or not), as opposed to failing.
func (s *Scanner) scanWith(ctx context.Context, st *scanState, e Engine, it item, r io.Reader) (d Detection, ok bool, err error) {
	a, err := s.ask(ctx, st, e, r)
	if err != nil {
		return d, false, err
	}
	d, ok = s.record(st, e, it, a)
	return d, ok, nil
}

// answer is what one engine call gave: a detection, or the engine's error.
type answer struct {
	d   Detection
	err error
}

// ask makes one engine call; the error is for a cancelled ctx only.
func (s *Scanner) ask(ctx context.Context, st *scanState, e Engine, r io.Reader) (answer, error) {
	// At most MaxEngineCalls at once, whoever asks: the engines are the
	// scarce part, and an in-process milter has as many scans as SMTP
	// sessions.
	select {
	case s.calls <- struct{}{}:
		defer func() { <-s.calls }()
	case <-ctx.Done():
		return answer{}, fmt.Errorf("scan cancelled waiting for an engine: %w", ctx.Err())
	}
	ectx, cancel := context.WithTimeout(ctx, s.opt.EngineTimeout)
	defer cancel()
	began := time.Now()
	d, err := e.Scan(ectx, r)
	s.spend(st, time.Since(began))
	if pe, isPanic := errors.AsType[*PanicError](err); isPanic {
		// A goroutine of the engine's own panicked: as if the call
		// had, the scan fails (and the panic is logged, with its stack).
		return answer{}, pe
	}
	if ctx.Err() != nil {
		return answer{}, fmt.Errorf("scan cancelled: %w", ctx.Err())
	}
	if err != nil && ectx.Err() == context.DeadlineExceeded {
		err = engineerr.Mark(err, engineerr.ErrTimeout) // engine_timeout
	}
	return answer{d, err}, nil
}

// record adds what an engine answered about an item to the verdict. ok is
// true when the engine answered (found or not), as opposed to failing.
func (s *Scanner) record(st *scanState, e Engine, it item, a answer) (Detection, bool) {
	f := verdict.Finding{Path: it.path, FileName: it.fileName, ContentType: it.contentType, Engine: e.Name()}
	switch err := a.err; {
	case errors.Is(err, ErrTooLarge):
		f.Kind, f.Detail = verdict.KindLimitExceeded, e.Name()+": "+err.Error()
	case err != nil:
		f.Kind, f.Detail, f.Err = verdict.KindScanError, err.Error(), err
	default:
		recordDetection(st, e, it, a.d)
		return a.d, true
	}
	st.v.Add(f)
	return a.d, false
}

func recordDetection(st *scanState, e Engine, it item, d Detection) {
	if !d.Found {
		return
	}
	f := verdict.Finding{Path: it.path, FileName: it.fileName, ContentType: it.contentType, Engine: e.Name(), Raw: d.Raw}
	switch d.Kind {
	case verdict.KindLimitExceeded, verdict.KindEncrypted:
		f.Kind, f.Detail = d.Kind, d.Detail
	default:
		f.Kind, f.Threat = verdict.KindVirus, d.Threat
	}
	if f.Kind == verdict.KindEncrypted && st.decryptedWithin(it.path, d.Format) {
		return
	}
	st.v.Add(f)
}

// decryptedWithin reports whether the encrypted content an engine saw in
// the item at scope ("" the raw message) is what the scanner itself opened
// with a password from the message and scanned decrypted: an archive of
// that format was opened under scope, and nothing encrypted under scope
// stayed closed. Then the engine's alert (clamd cannot use the password)
// must not override the verdict on the decrypted members.
func (st *scanState) decryptedWithin(scope string, format archive.Format) bool {
	within := func(p string) bool { return scope == "" || p == scope || strings.HasPrefix(p, scope+"/") }
	opened := false
	for _, o := range st.opened {
		if format != "" && o.format == format && within(o.path) {
			opened = true
		}
	}
	if !opened {
		return false
	}
	for _, f := range st.v.Findings {
		if f.Kind == verdict.KindEncrypted && within(f.Path) {
			return false
		}
	}
	return true
}
