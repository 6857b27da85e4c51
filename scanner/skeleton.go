package scanner

import (
	"io"
	"strings"

	"github.com/avstation/avstation/mimepart"
)

// clamd's mail parser costs about 80 µs per KB of message whatever it
// holds (ClamAV 1.4.6, 2 cores: 11.8 ms for a 140 KB text mail, 10.8 ms for
// one with a 100 KB zip attached, against 5-6 ms for that zip sent
// decoded). So an engine that parses mail is sent the raw message with the
// base64 bodies of its attachments cut out — the headers, the text and the
// structure as they came, for its mail signatures and phishing checks —
// and each cut attachment decoded, on its own (the item's cut flag:
// scanCutFirst sends it first; what clamd unpacks from it is covered as it
// was by the raw scan).
//
// Text is never cut, attached or not: clamd's phishing and mail checks
// read it as mail. A body is cut only where every reader sees the same
// bytes in it: a message whose index met anything to guess about (an
// anomaly, a line that may be a boundary, a limit, an unreadable header)
// is sent whole, and so is one whose structure clamd may read otherwise
// than go-message (a header line it breaks apart, a boundary parameter in
// any but the plain form, transport padding after a boundary, a body it
// reads as header lines: plainBoundary, plainDelimiters, bodyAsHeader),
// and so is a body with anything but the
// base64 alphabet and line breaks, or padding before its end. Such a body
// holds no boundary line and no header for any parser ('-' and ':' are
// not in the alphabet), so cutting it hides nothing but what the decoded
// attachment shows, and what every decoder makes of it is the same. A walk
// that then meets a decoding error has the whole message sent too
// (scanRawLast).

// minCut is the smallest body cut out: below it the saving is less than
// the engine call the cut attachment costs.
const minCut = 8 << 10

// skeleton is the raw message less the cut bodies, read through ReadAt.
type skeleton struct {
	r    io.ReaderAt
	keep []span // what is kept of r, in order
	size int64
	// cut lists the MIME paths of the leaves cut out.
	cut map[string]bool
}

// span is n bytes of the raw message from off.
type span struct{ off, n int64 }

// cutAttachments is the skeleton of the indexed message in r, or nil when
// nothing is cut (the message is sent whole).
func cutAttachments(ix *index, r io.ReaderAt, size int64) *skeleton {
	m := ix.m
	if m.Limit != nil {
		return nil
	}
	var cuts []*mimepart.Entity
	if !cuttable(m.Root, r, &cuts) || len(cuts) == 0 {
		return nil
	}
	sk := &skeleton{r: r, cut: map[string]bool{}}
	at := int64(0)
	for _, e := range cuts { // in message order: offsets increase
		sk.keep = append(sk.keep, span{at, e.BodyStart - at})
		at = e.End
		sk.cut[e.Leaf()] = true
	}
	sk.keep = append(sk.keep, span{at, size - at})
	for _, s := range sk.keep {
		sk.size += s.n
	}
	return sk
}

// cuttable collects the leaves of e whose bodies may be cut, in message
// order, and reports false when nothing of the message may be cut.
func cuttable(e *mimepart.Entity, r io.ReaderAt, cuts *[]*mimepart.Entity) bool {
	// Where clamd reads the message into other parts than the index
	// (readApart; a boundary it reads another way, below), what it decodes
	// joins a cut body to the bytes around it (TestAttackSkeletonStructure).
	if e.Unreadable || e.Stopped || e.Truncated || len(e.Anomalies) > 0 || len(e.Ambiguous) > 0 || readApart(e, r) {
		return false
	}
	switch {
	case e.Multipart():
		if !plainBoundary(e) || !e.Decoded && !plainDelimiters(e, r) {
			return false
		}
		for _, c := range e.Parts {
			if !cuttable(c, r, cuts) {
				return false
			}
		}
	case e.Attached != nil:
		return cuttable(e.Attached, r, cuts)
	case !e.Decoded && e.Attachment && !strings.HasPrefix(e.ContentType, "text/") && e.TransferEncoding == "base64" &&
		e.End-e.BodyStart >= minCut && plainBase64(io.NewSectionReader(r, e.BodyStart, e.End-e.BodyStart)):
		*cuts = append(*cuts, e)
	}
	return true
}

// plainBoundary reports whether the multipart e says its boundary in a
// Content-Type every parser reads alike, as go-message does: one
// "boundary=B" or "boundary="B"", the only "boundary" in the field, no
// RFC 2231 parameters, comments, quoted pairs or encoded words, no ';'
// at the end, and B without white space at either end or a ';' in it. clamd (ClamAV 1.4.6) reads the
// parts apart differently after "boundary="B";", "boundary=B;", RFC 2231
// continuations, "boundary=" inside another parameter's quoted value, a
// boundary ending in a space, a ';' in the boundary (clamd splits the
// field at every ';', quoted or not, and takes what is before it) and an
// encoded word anywhere in the field (clamd decodes RFC 2047 words in a
// whole header line before it reads it): TestAttackSkeletonBoundaryForms.
func plainBoundary(e *mimepart.Entity) bool {
	vs := e.Header.Values("Content-Type")
	if len(vs) != 1 {
		return false
	}
	v, b := vs[0], e.Boundary
	lower := strings.ToLower(v)
	i := strings.Index(lower, "boundary")
	if i < 0 || len(lower) != len(v) || strings.Count(lower, "boundary") != 1 || strings.ContainsAny(v, "*()\\") ||
		strings.Contains(v, "=?") || strings.HasSuffix(strings.TrimRight(v, " \t\r\n"), ";") || strings.TrimSpace(b) != b ||
		strings.ContainsAny(b, `";`) {
		return false
	}
	rest := v[i+len("boundary"):]
	for _, form := range []string{`="` + b + `"`, "=" + b} {
		if after, ok := strings.CutPrefix(rest, form); ok {
			after = strings.TrimLeft(after, " \t")
			return after == "" || after[0] == ';'
		}
	}
	return false
}

// plainDelimiters reports whether every delimiter line of the multipart e
// is "--boundary" and the line break, and its close delimiter
// "--boundary--" and the line break or the end: transport padding after
// the boundary is a delimiter to go-message (and the index) but a tab in
// it is none to clamd, which then reads the part before it on into the
// part after, as one body to decode (TestAttackSkeletonDelimiterPadding).
func plainDelimiters(e *mimepart.Entity, r io.ReaderAt) bool {
	if !e.Closed || len(e.Parts) == 0 {
		return false
	}
	dash := "--" + e.Boundary
	for _, c := range e.Parts {
		// The delimiter line ends where the part's header begins.
		if at := c.HeaderStart - int64(len(dash)+len(e.NL)); at < e.BodyStart || !bytesAt(r, at, dash+e.NL) {
			return false
		}
	}
	last := e.Parts[len(e.Parts)-1]
	after := last.Next + int64(len(dash)+2)
	return bytesAt(r, last.Next, dash+"--") && (after == e.End || bytesAt(r, after, e.NL))
}

// bytesAt reports whether r holds s at off.
func bytesAt(r io.ReaderAt, off int64, s string) bool {
	b := make([]byte, len(s))
	n, _ := r.ReadAt(b, off)
	return n == len(s) && string(b) == s
}

// plainBase64 reports whether r holds only base64 lines: the standard
// alphabet, CR and LF, with '=' padding only at the end.
func plainBase64(r io.Reader) bool {
	var buf [32 << 10]byte
	padded := false
	for {
		n, err := r.Read(buf[:])
		p := buf[:n]
		for len(p) > 0 {
			if !padded {
				// Eight bytes at a time while all are letters or line
				// breaks: an attachment is all but its line breaks and
				// its end.
				for len(p) >= 8 && all8(&b64Body, p) {
					p = p[8:]
				}
				if len(p) == 0 {
					break
				}
			}
			switch b64Class[p[0]] {
			case b64Letter:
				if padded {
					return false // data after padding
				}
			case b64Pad:
				padded = true
			case b64Break:
			default:
				return false
			}
			p = p[1:]
		}
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// b64Class sorts bytes for plainBase64: a table, since the check reads
// every byte of every attachment (a switch of ranges cost 8 ns a byte).
var b64Class = func() (t [256]byte) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = b64Letter
	}
	t['='], t['\r'], t['\n'] = b64Pad, b64Break, b64Break
	return t
}()

// b64Body is 1 for the bytes that may come before the padding, letters and
// line breaks, and 0 for the rest: plainBase64 ANDs eight at a time.
var b64Body = func() (t [256]uint8) {
	for c, class := range b64Class {
		if class == b64Letter || class == b64Break {
			t[c] = 1
		}
	}
	return t
}()

// b64Class values; 0 is any other byte.
const (
	b64Letter = iota + 1
	b64Pad
	b64Break
)

// ReadAt reads the skeleton as if it were one file.
func (sk *skeleton) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	pos := int64(0)
	for _, s := range sk.keep {
		if len(p) == 0 {
			break
		}
		if off >= pos+s.n {
			pos += s.n
			continue
		}
		k, err := sk.r.ReadAt(p[:min(int64(len(p)), pos+s.n-off)], s.off+off-pos)
		n += k
		p, off = p[k:], off+int64(k)
		if err != nil && err != io.EOF {
			return n, err
		}
		pos += s.n
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}
