package scanner

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"

	"github.com/avstation/avstation/mimepart"
	"github.com/avstation/avstation/scanner/archive"
	"github.com/avstation/avstation/verdict"
)

// MailUnpacker is implemented by an engine that parses mail and unpacks
// archives itself, as clamd does. Such an engine is sent the raw message
// first and, while that comes back clean, only the parts and members it
// cannot have seen in the raw bytes: everything else it has already
// scanned, and sending it again doubles its CPU for nothing. An engine
// without the method (a command-line scanner) is sent every part.
type MailUnpacker interface {
	UnpacksMail() bool
}

// ClamdLimits are the limits the station assumes of the clamd behind it
// (clamd.conf's MaxRecursion, MaxFiles, MaxFileSize, MaxScanSize).
// Content past them was not scanned from the raw message, so it is sent
// to clamd on its own. Set lower than clamd's, they cost CPU; higher,
// detection.
type ClamdLimits struct {
	MaxRecursion int
	MaxFiles     int
	MaxFileSize  int64
	MaxScanSize  int64
}

// DefaultClamdLimits are clamd 1.4's defaults.
func DefaultClamdLimits() ClamdLimits {
	return ClamdLimits{MaxRecursion: 17, MaxFiles: 10000, MaxFileSize: 100 << 20, MaxScanSize: 400 << 20}
}

// clamdOpens lists the archive formats whose members clamd was seen to
// unpack from a raw message (TestClamdCoverage: deflated zip, 7z, tar,
// gzip). The members of any other are sent: Debian's clamd has no unrar
// (libclamunrar is not packaged), and bzip2 and xz were not measured.
var clamdOpens = map[archive.Format]bool{archive.Zip: true, archive.SevenZip: true, archive.Tar: true, archive.Gzip: true}

// rawCoverage is what the raw scans of one message covered.
type rawCoverage struct {
	// answers holds each unpacking engine's raw answer, by engine index
	// (nil for the others), recorded once the parts are scanned so that
	// findings keep their order: parts first, the raw message last.
	answers []*answer
	// covered[i]: engine i unpacks mail and its raw answer was clean, so
	// it needs only the content it cannot have seen.
	covered []bool
	// files and bytes estimate clamd's MaxFiles and MaxScanSize counts
	// (the raw message, every part, member and decoded file), from above.
	files int
	bytes int64
	// tooLarge: the raw message is past MaxFileSize; clamd skipped it.
	tooLarge bool
	// skeleton, when set, is what the unpacking engines were sent instead
	// of the raw message: it without the bodies of the attachments that
	// are sent decoded (skeleton.go).
	skeleton *skeleton
	// misreads are the paths of the entities whose parts clamd may not
	// have read (clamdMisreads): what is under them is sent.
	misreads []string
}

// scanRawFirst sends the raw message to each engine that unpacks mail,
// before the walk, and keeps the answers.
func (s *Scanner) scanRawFirst(ctx context.Context, st *scanState, r io.ReaderAt, size int64) error {
	cov := &st.raw
	cov.answers = make([]*answer, len(s.engines))
	cov.covered = make([]bool, len(s.engines))
	cov.files, cov.bytes = 1, size
	cov.tooLarge = size > s.opt.Clamd.MaxFileSize || size > s.opt.Clamd.MaxScanSize
	if root := st.ix.m.Root; !root.Unreadable {
		cov.misreads = clamdMisreads(root, r)
	}
	if s.opt.Mode == ModeAttachments {
		return nil // no raw scan: every attachment goes to every engine
	}
	raw := io.NewSectionReader(r, 0, size)
	for i, e := range s.engines {
		if !unpacksMail(e) {
			continue
		}
		if i == s.firstUnpacker() && s.opt.Mode == ModeAll && !s.opt.ClamdWhole {
			// Only when the parts are scanned too: they show what is cut.
			if cov.skeleton = cutAttachments(st.ix, r, size); cov.skeleton != nil {
				raw = io.NewSectionReader(cov.skeleton, 0, cov.skeleton.size)
			}
		}
		raw.Seek(0, io.SeekStart)
		a, err := s.ask(ctx, st, e, raw)
		if err != nil {
			return err
		}
		cov.answers[i] = &a
		// Anything but a clean answer (a virus, a limit or encryption
		// alert, an error) has the parts scanned too, so that the finding
		// names the part and its file.
		cov.covered[i] = a.err == nil && !a.d.Found && !cov.tooLarge
	}
	return nil
}

// scanRawLast records the unpacking engines' raw answers and asks the
// other engines about the raw message, after the parts.
func (s *Scanner) scanRawLast(ctx context.Context, st *scanState, r io.ReaderAt, size int64) error {
	if s.opt.Mode == ModeAttachments {
		return nil
	}
	raw := item{contentType: "message/rfc822"}
	// The walk met something to guess about after all (a body that did
	// not decode): the engines that were sent the skeleton are sent the
	// whole message, to read it their way.
	whole := st.raw.skeleton != nil && st.doubt()
	for i, e := range s.engines {
		if a := st.raw.answers[i]; a != nil {
			s.record(st, e, raw, *a)
			if !whole {
				continue
			}
		}
		if _, _, err := s.scanWith(ctx, st, e, raw, io.NewSectionReader(r, 0, size)); err != nil {
			return err
		}
	}
	return nil
}

func unpacksMail(e Engine) bool {
	u, ok := e.(MailUnpacker)
	return ok && u.UnpacksMail()
}

// account counts an examined item as clamd would and marks it unseen when
// clamd's raw scan cannot have reached it: deeper than MaxRecursion (MIME
// and archive levels; clamd 1.4.6 found EICAR 15 zips deep in an
// attachment, not 16), past MaxFiles or MaxScanSize, larger than
// MaxFileSize. It is called before the item's members are examined, in
// the order clamd meets them.
func (s *Scanner) account(st *scanState, it *item, size int64) {
	lim := s.opt.Clamd
	cov := &st.raw
	cov.files++
	cov.bytes += size
	if it.level >= lim.MaxRecursion-1 || cov.files >= lim.MaxFiles || cov.bytes > lim.MaxScanSize || size > lim.MaxFileSize {
		it.unseen = true
	}
}

// sendTo reports whether engine i is asked about an item.
func (st *scanState) sendTo(i int, it item) bool {
	if i >= len(st.raw.covered) || !st.raw.covered[i] || it.unseen {
		return true
	}
	// An attachment cut out of what it was sent is sent decoded; when in
	// doubt, send.
	return it.cut || st.doubt()
}

// doubt reports whether the walk met a structure it had to guess about
// or a limit: clamd's parser may have read the message apart differently.
func (st *scanState) doubt() bool {
	for _, f := range st.v.Findings {
		if f.Kind == verdict.KindUnscannable || f.Kind == verdict.KindLimitExceeded {
			return true
		}
	}
	return false
}

// firstUnpacker is the index of the first engine that unpacks mail, -1
// when none does.
func (s *Scanner) firstUnpacker() int {
	for i, e := range s.engines {
		if unpacksMail(e) {
			return i
		}
	}
	return -1
}

// mimeLevel is a MIME part's nesting: "2/1" is 2.
func mimeLevel(path string) int {
	return strings.Count(path, "/") + 1
}

// clamdMisreads lists the entities of the message whose parts clamd's raw
// scan may not have read at all, by path: what is under one is sent to it
// (misread). clamd 1.4.6 reads
//   - of a multipart/signed or multipart/parallel only one part, a text
//     one when there is one (TestAttackClamdOnePart);
//   - a multipart's part whose body begins with "Content" or "filename="
//     or holds "base64" in its first line as going on with its header
//     (the body, the next delimiter line and the next part's header), so
//     that it decodes neither that part nor the next as the walk does
//     (TestAttackClamdBodyAsHeader: bodyAsHeader);
//   - a multipart with a multipart inside whose boundary is like its own
//     (nestedBoundaries) as other parts than the index;
//   - an entity whose header has a line it splits apart or takes for
//     another field than go-message does (mimepart's SplitHeader, a
//     line longer than it reads: longHeaderLine, a field it reads on
//     into the next: runOnField) in another structure than the index.
//
// r holds the raw message.
func clamdMisreads(root *mimepart.Entity, r io.ReaderAt) []string {
	var out []string
	var visit func(e *mimepart.Entity)
	visit = func(e *mimepart.Entity) {
		if readApart(e, r) || e.ContentType == "multipart/signed" || e.ContentType == "multipart/parallel" {
			out = append(out, e.Path)
			return
		}
		for _, c := range e.Parts {
			visit(c)
		}
		if e.Attached != nil {
			visit(e.Attached)
		}
	}
	visit(root)
	return out
}

// readApart reports whether clamd may read e into other parts than the
// index does: e's header has a line clamd splits apart or takes for
// another field (mimepart's SplitHeader), one longer than it reads whole
// (longHeaderLine) or a field it reads on into the next (runOnField); or
// e is a multipart with a part whose body clamd reads on as its header
// (bodyAsHeader) or a multipart inside with a boundary like e's
// (nestedBoundaries). clamdMisreads sends what is under such an entity;
// cuttable cuts nothing from a message that has one.
func readApart(e *mimepart.Entity, r io.ReaderAt) bool {
	return len(e.SplitHeader) > 0 || longHeaderLine(e, r) || runOnField(e) ||
		e.Multipart() && (slices.ContainsFunc(e.Parts, bodyAsHeader) || nestedBoundaries(e))
}

// bodyAsHeader reports whether clamd takes the first line of the body of
// the part e of a multipart for a line of its header: at the blank line
// it goes on with the header when the next line begins with "Content" or
// "filename=", or holds "base64" (in an application part without a
// transfer encoding). It drops NULs and breaks lines at CR, LF and 999
// bytes.
func bodyAsHeader(e *mimepart.Entity) bool {
	var buf [999]byte
	n, _ := io.ReadFull(e.Body(), buf[:])
	line := bytes.ReplaceAll(buf[:n], []byte{0}, nil)
	if i := bytes.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	return bytes.HasPrefix(line, []byte("Content")) || bytes.HasPrefix(line, []byte("filename=")) || bytes.Contains(line, []byte("base64"))
}

// misread reports whether the item at path is under an entity clamd's raw
// scan may not have read (clamdMisreads).
func (cov *rawCoverage) misread(path string) bool {
	for _, p := range cov.misreads {
		if p == "" || path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// nestedBoundaries reports whether the multipart e holds a multipart (in
// its raw bytes) whose boundary is like e's: in lower case, the same
// without their leading '-', or the inner one e's and '-' and more.
// clamd takes for a delimiter of e "--" and e's boundary after any number
// of '-', in any case, and for its close delimiter any line that begins
// with "--", e's boundary in any case and "--": the delimiter lines of
// the multipart inside may be e's to it, which then reads the parts apart otherwise than go-message (an
// attachment of the inner multipart and the inner epilogue as one body;
// the inner parts as no parts at all): TestAttackClamdNestedBoundaries.
func nestedBoundaries(e *mimepart.Entity) bool {
	outer := strings.ToLower(e.Boundary)
	var like func(d *mimepart.Entity) bool
	like = func(d *mimepart.Entity) bool {
		if d.Decoded {
			return false
		}
		if d.Multipart() {
			inner := strings.ToLower(d.Boundary)
			if strings.TrimLeft(inner, "-") == strings.TrimLeft(outer, "-") || strings.HasPrefix(inner, outer+"-") {
				return true
			}
		}
		if d.Attached != nil && like(d.Attached) {
			return true
		}
		return slices.ContainsFunc(d.Parts, like)
	}
	return slices.ContainsFunc(e.Parts, like)
}

// clamdLine is the length from which clamd (ClamAV 1.4.6's
// getline_from_mbox) reads a line as several: pieces of 999 bytes and
// the rest, each a line of its own (a header field when it looks like
// one, an empty line that ends a header when the line is 999 bytes).
const clamdLine = 999

// longHeaderLine reports whether the header of e (in the raw message r)
// has a line of clamdLine bytes or more: a piece of it may be a Content-Type
// to clamd that go-message does not see (TestAttackClamdLongHeaderLine).
// The header of an entity in a decoded attached message is not read: its
// parts are sent anyway.
func longHeaderLine(e *mimepart.Entity, r io.ReaderAt) bool {
	if e.Decoded || e.BodyStart-e.HeaderStart < clamdLine {
		return false
	}
	h := make([]byte, e.BodyStart-e.HeaderStart)
	if n, _ := r.ReadAt(h, e.HeaderStart); n < len(h) {
		return true
	}
	for len(h) > 0 {
		i := bytes.IndexAny(h, "\r\n")
		if i < 0 {
			i = len(h)
		}
		if i >= clamdLine {
			return true
		}
		h = h[min(i+1, len(h)):]
	}
	return false
}

// runOnField reports whether a field of e's header is one clamd (ClamAV
// 1.4.6) reads on into the next header line, folded or not, which
// go-message reads as a field of its own. In a message's header that is
// a Content-* field that ends with ';' or holds an odd number of '"'
// (and the line after the blank line is then header too):
// "Content-Disposition: inline;" before the Content-Type hides the
// Content-Type from it, and filename="a\"b" the next field. In a body
// part's header, any field that ends with ';' (it takes the next line
// for its continuation when it holds '='): "X-Foo: a;" hides the part's
// Content-Type (TestAttackClamdRunOnField).
func runOnField(e *mimepart.Entity) bool {
	content := map[string]bool{"content-type": true, "content-disposition": true, "content-transfer-encoding": true}
	for f := e.Header.Fields(); f.Next(); {
		v := f.Value()
		if !e.Message || content[strings.ToLower(f.Key())] {
			if strings.HasSuffix(strings.TrimRight(v, " \t\r\n"), ";") {
				return true
			}
		}
		if content[strings.ToLower(f.Key())] && strings.Count(v, `"`)%2 == 1 {
			return true
		}
	}
	return false
}
