package quarantine

import (
	"github.com/avstation/avstation/mimepart"

	"bufio"
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/avstation/avstation/verdict"
)

// maxHeader bounds the header of one entity that ExtractParts reads. The
// scanner refused larger ones long before a message reaches quarantine.
const maxHeader = 4 << 20

// ExtractParts writes to w a new message holding only the given MIME parts
// of msg, for "quarantine only infected attachments". The message is
// multipart/mixed, From the original From (MAILER-DAEMON when there is
// none), with Subject "Quarantined attachments of: <original subject>".
//
// Paths are IMAP part numbers (RFC 3501 6.4.5) as the scanner reports them:
// "2" is the second top-level part, "3/1" the first part inside the third,
// "1" the body of a single-part message. An archive member's path,
// "2/x.zip/y.exe", means the MIME part that holds the archive, "2". Each
// part is copied byte for byte with its header, transfer encoding and all,
// so what the engines flagged is exactly what is kept. The body of a
// single-part message keeps only its Content-* header fields. A path that
// cannot be followed to the end (inside a message/rfc822 that is itself
// base64-encoded, past a broken multipart) keeps the nearest part that
// holds it; "" or "0", or a path that leads nowhere at all, keeps the whole
// message as a message/rfc822 part. Nothing a path names is ever dropped.
func ExtractParts(msg io.ReaderAt, size int64, paths []string, w io.Writer) error {
	if len(paths) == 0 {
		return errors.New("quarantine: extract parts: no parts given")
	}
	p := &parser{r: msg}
	root, err := p.entity(0, size, true)
	if err != nil {
		return fmt.Errorf("quarantine: extract parts: %w", err)
	}
	var picked []entity
	for _, path := range mimePaths(paths) {
		e, err := p.find(root, path)
		if err != nil {
			return fmt.Errorf("quarantine: extract parts: %s: %w", path, err)
		}
		picked = append(picked, e)
	}
	picked = outermost(picked)

	var b bytes.Buffer
	from := unfold(root.header.Get("From"))
	if from == "" {
		from = "MAILER-DAEMON"
	}
	boundary := newBoundary()
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "Subject: Quarantined attachments of: %s\r\n", unfold(root.header.Get("Subject")))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	if id := unfold(root.header.Get("Message-Id")); id != "" {
		fmt.Fprintf(&b, "References: %s\r\n", id)
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	for _, e := range picked {
		if _, err := io.WriteString(w, "--"+boundary+"\r\n"); err != nil {
			return err
		}
		if err := p.copyEntity(w, e); err != nil {
			return fmt.Errorf("quarantine: extract parts: %w", err)
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "--"+boundary+"--\r\n")
	return err
}

// InfectedParts returns the MIME paths of the parts in which the verdict
// found a virus, in the form ExtractParts takes, each once.
func InfectedParts(v *verdict.Verdict) []string {
	if v == nil {
		return nil
	}
	var paths []string
	for _, f := range v.Findings {
		if f.Kind == verdict.KindVirus {
			paths = append(paths, f.Path)
		}
	}
	return mimePaths(paths)
}

// mimePaths cuts each path to its MIME part and removes duplicates.
func mimePaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		if m := mimepart.Part(p); !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// entity is a byte range of the message: a message (the whole message or
// one inside a message/rfc822 part) or a body part.
type entity struct {
	start, body, end int64 // header at [start, body), body at [body, end)
	rawHeader        []byte
	header           textproto.Header
	isMsg            bool // a message: its parts are numbered below it
	// bodyOnly: the body of a single-part message, kept with only the
	// Content-* fields of its header.
	bodyOnly bool
}

func (e entity) mediaType() (string, map[string]string) {
	t, params, err := mime.ParseMediaType(e.header.Get("Content-Type"))
	if err != nil && t == "" {
		return "text/plain", nil // RFC 2045 5.2
	}
	return strings.ToLower(t), params
}

func (e entity) multipartBoundary() string {
	t, params := e.mediaType()
	if !strings.HasPrefix(t, "multipart/") {
		return ""
	}
	return params["boundary"]
}

type parser struct{ r io.ReaderAt }

// entity reads the header of the entity at [start, end).
func (p *parser) entity(start, end int64, isMsg bool) (entity, error) {
	e := entity{start: start, body: end, end: end, isMsg: isMsg}
	lr := newLineReader(p.r, start, end)
	hdrEnd := end
	for {
		line, off, _, err := lr.next()
		if err == io.EOF {
			break // header without a body
		}
		if err != nil {
			return e, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			hdrEnd, e.body = off, off+int64(len(line))
			break
		}
		if off+int64(len(line))-start > maxHeader {
			return e, fmt.Errorf("header at offset %d longer than %d bytes", start, maxHeader)
		}
	}
	e.rawHeader = make([]byte, hdrEnd-start)
	if n, err := p.r.ReadAt(e.rawHeader, start); n < len(e.rawHeader) {
		return e, fmt.Errorf("header at offset %d: %w", start, cmp.Or(err, io.ErrUnexpectedEOF))
	}
	h, err := textproto.ReadHeader(bufio.NewReader(io.MultiReader(bytes.NewReader(e.rawHeader), strings.NewReader("\r\n"))))
	if err == nil {
		e.header = h
	} // an unreadable header is one without fields: text/plain, a leaf
	return e, nil
}

// find follows path from the message root, keeping the deepest part reached.
func (p *parser) find(root entity, path string) (entity, error) {
	best := root
	if path == "" {
		return best, nil
	}
	cur := root
	comps := strings.Split(path, "/")
	for len(comps) > 0 {
		n, _ := strconv.Atoi(comps[0])
		comps = comps[1:]
		if cur.isMsg && cur.multipartBoundary() == "" {
			// Part 1 of a single-part message is its body.
			if n != 1 {
				return best, nil
			}
			cur.isMsg, cur.bodyOnly = false, true
			best = cur
		} else {
			kids, err := p.children(cur)
			if err != nil {
				return best, err
			}
			if n < 1 || n > len(kids) {
				return best, nil
			}
			cur = kids[n-1]
			best = cur
		}
		if len(comps) > 0 && cur.multipartBoundary() == "" {
			inner, ok, err := p.inner(cur)
			if err != nil || !ok {
				return best, err
			}
			cur = inner
		}
	}
	return best, nil
}

// inner is the message inside a message/rfc822 part, when it is there as
// bytes: a transfer encoding other than the identity ones (RFC 2046 5.2.1
// allows no other) would have to be decoded, and could not be copied.
func (p *parser) inner(e entity) (entity, bool, error) {
	t, _ := e.mediaType()
	if t != "message/rfc822" && t != "message/global" {
		return entity{}, false, nil
	}
	switch strings.ToLower(strings.TrimSpace(e.header.Get("Content-Transfer-Encoding"))) {
	case "", "7bit", "8bit", "binary":
	default:
		return entity{}, false, nil
	}
	in, err := p.entity(e.body, e.end, true)
	return in, err == nil, err
}

// children splits a multipart body at its delimiter lines (RFC 2046 5.1.1).
// A part ends before the line break that precedes the next delimiter, which
// belongs to the delimiter. A missing close delimiter ends the last part at
// the end of the body.
func (p *parser) children(e entity) ([]entity, error) {
	boundary := e.multipartBoundary()
	if boundary == "" {
		return nil, nil
	}
	dash := []byte("--" + boundary)
	lr := newLineReader(p.r, e.body, e.end)
	var kids []entity
	partStart := int64(-1)
	var prevEOL int64 // length of the line break ending the previous line
	closePart := func(end int64) error {
		if partStart < 0 {
			return nil
		}
		end -= prevEOL
		if end < partStart {
			end = partStart
		}
		k, err := p.entity(partStart, end, false)
		if err != nil {
			return err
		}
		kids = append(kids, k)
		return nil
	}
	for {
		line, off, eol, err := lr.next()
		if err == io.EOF {
			prevEOL = 0
			return kids, closePart(e.end)
		}
		if err != nil {
			return nil, err
		}
		if rest, ok := bytes.CutPrefix(line, dash); ok {
			closing := bytes.HasPrefix(rest, []byte("--"))
			if closing {
				rest = rest[2:]
			}
			if len(bytes.TrimRight(rest, " \t\r\n")) == 0 {
				if err := closePart(off); err != nil {
					return nil, err
				}
				if closing {
					return kids, nil
				}
				partStart = lr.off
				prevEOL = 0
				continue
			}
		}
		prevEOL = int64(eol)
	}
}

// copyEntity writes one picked entity as a body part.
func (p *parser) copyEntity(w io.Writer, e entity) error {
	switch {
	case e.isMsg:
		// The whole message, as an attachment.
		if _, err := io.WriteString(w, "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"message.eml\"\r\n\r\n"); err != nil {
			return err
		}
		return p.copyRange(w, e.start, e.end)
	case e.bodyOnly:
		for _, f := range rawFields(e.rawHeader) {
			if len(f) >= 8 && strings.EqualFold(string(f[:8]), "content-") {
				if _, err := w.Write(f); err != nil {
					return err
				}
			}
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return err
		}
		return p.copyRange(w, e.body, e.end)
	}
	return p.copyRange(w, e.start, e.end)
}

func (p *parser) copyRange(w io.Writer, start, end int64) error {
	_, err := io.Copy(w, io.NewSectionReader(p.r, start, end-start))
	return err
}

// outermost drops picked entities that lie inside another picked one, and
// orders the rest as they are in the message.
func outermost(es []entity) []entity {
	slices.SortFunc(es, func(a, b entity) int {
		if a.start != b.start {
			return int(min(max(a.start-b.start, -1), 1))
		}
		return int(min(max(b.end-a.end, -1), 1)) // the larger first
	})
	var out []entity
	for _, e := range es {
		if n := len(out); n > 0 && e.start >= out[n-1].start && e.end <= out[n-1].end {
			continue
		}
		out = append(out, e)
	}
	return out
}

// rawFields splits a raw header into fields, each with its continuation
// lines and line breaks as they were.
func rawFields(raw []byte) [][]byte {
	var fields [][]byte
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n') + 1
		if i == 0 {
			i = len(raw)
		}
		line := raw[:i]
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			last := fields[len(fields)-1]
			fields[len(fields)-1] = last[:len(last)+len(line)] // contiguous in raw
		} else {
			fields = append(fields, line)
		}
		raw = raw[i:]
	}
	return fields
}

// unfold makes a header value one line (RFC 5322 2.2.3).
func unfold(s string) string {
	s = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(s)
	return strings.TrimSpace(s)
}

func newBoundary() string {
	var r [18]byte
	_, _ = rand.Read(r[:])
	return "avstation-q-" + hex.EncodeToString(r[:])
}

// lineReader reads the lines of [start, end) of r with their offsets.
type lineReader struct {
	br  *bufio.Reader
	off int64
	buf []byte
}

func newLineReader(r io.ReaderAt, start, end int64) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(io.NewSectionReader(r, start, end-start), 64<<10), off: start}
}

// next returns the next line with its line break, its offset and the
// length of its line break (0, 1 or 2). A line longer than the buffer is
// returned cut to the buffer's size at its start (enough to tell that it is
// no delimiter and no blank line) but counted whole.
func (l *lineReader) next() (line []byte, off int64, eol int, err error) {
	off = l.off
	line, err = l.br.ReadSlice('\n')
	l.off += int64(len(line))
	eol = eolLen(line, 0)
	if err == bufio.ErrBufferFull {
		l.buf = append(l.buf[:0], line...)
		prev := line[len(line)-1]
		for err == bufio.ErrBufferFull {
			var more []byte
			more, err = l.br.ReadSlice('\n')
			l.off += int64(len(more))
			if len(more) > 0 {
				eol = eolLen(more, prev)
				prev = more[len(more)-1]
			}
		}
		line = l.buf
		if err == io.EOF {
			err = nil
		}
	}
	if err == io.EOF && len(line) > 0 {
		err = nil
	}
	return line, off, eol, err
}

// eolLen is the length of the line break that ends chunk; prev is the byte
// before chunk, for a CR LF split between two reads.
func eolLen(chunk []byte, prev byte) int {
	n := len(chunk)
	switch {
	case n == 0 || chunk[n-1] != '\n':
		return 0
	case n >= 2 && chunk[n-2] == '\r', n == 1 && prev == '\r':
		return 2
	}
	return 1
}
