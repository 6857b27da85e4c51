package mimepart

import (
	"bytes"
	"fmt"
	"io"
)

// multipart indexes the parts of the multipart p, reading its body as
// go-message's multipart reader does: lines between parts as NextPart
// reads them, each part's body up to its boundary.
func (ix *indexer) multipart(s *src, p *Entity, depth int) error {
	dash := []byte("--" + p.Boundary)
	p.NL = "\r\n"
	pos, end := p.BodyStart, p.End
	var last *Entity
	for i := 1; ; i++ {
		at, next, ok, err := ix.nextPart(s, p, dash, pos, last == nil)
		if err != nil {
			return err
		}
		if last != nil && (ok || p.Closed) {
			last.Next = at
		}
		if !ok {
			return nil
		}
		childPath := Join(p.Path, i)
		hd, err := ix.readHeader(s, next, end, p.endErr)
		if err != nil {
			return err
		}
		// A header longer than the indexer holds is cut anywhere, even in a
		// line, so the reader complains: it is over the limit, not unreadable.
		if hd.err != nil && !hd.capped {
			p.Anomalies = append(p.Anomalies, Anomaly{Path: childPath, Detail: hd.err.Error()})
			return nil
		}
		ix.parts++
		if ix.parts > ix.lim.MaxParts {
			ix.limit(childPath, fmt.Sprintf("max_parts %d", ix.lim.MaxParts))
			return nil
		}
		c := &Entity{Path: childPath, HeaderStart: next, BodyStart: hd.body, Header: hd.h, r: s.r, Decoded: s.decoded, SplitHeader: hd.lines}
		if err := ix.body(s, p, c, dash); err != nil {
			return err
		}
		p.Parts = append(p.Parts, c)
		if err := ix.entity(s, c, hd.capped, depth+1); err != nil || ix.stopped {
			return err
		}
		last, pos = c, c.End
	}
}

// nextPart reads lines from pos as NextPart does, up to the next delimiter
// line: at is where that line begins, next where the part after it does.
// ok is false at the close delimiter or a structural error (an anomaly).
func (ix *indexer) nextPart(s *src, p *Entity, dash []byte, pos int64, first bool) (at, next int64, ok bool, err error) {
	expect := false
	for {
		line, lerr, err := s.nextLine(pos, p.End, p.endErr)
		if err != nil {
			return 0, 0, false, err
		}
		at, pos = pos, pos+int64(len(line))
		final := isFinal(line, dash, p.NL)
		switch {
		case lerr == io.EOF && final:
			p.Closed = true
			return at, pos, false, nil
		case lerr != nil:
			ix.anomaly(p, "NextPart: "+lerr.Error())
			return 0, 0, false, nil
		case isDelimiter(line, dash, p, first):
			return at, pos, true, nil
		case final:
			p.Closed = true
			return at, pos, false, nil
		case expect:
			ix.anomaly(p, fmt.Sprintf("expecting a new Part; got line %q", string(line)))
			return 0, 0, false, nil
		case first:
			if boundaryLike(line, dash) {
				p.Ambiguous = append(p.Ambiguous, fmt.Sprintf("preamble line %.80q", line))
			}
			continue
		case string(line) == p.NL:
			expect = true
			continue
		}
		ix.anomaly(p, fmt.Sprintf("unexpected line in Next(): %q", string(line)))
		return 0, 0, false, nil
	}
}

// anomaly records a structural error of multipart p at the path of the
// part it was reading towards.
func (ix *indexer) anomaly(p *Entity, detail string) {
	p.Anomalies = append(p.Anomalies, Anomaly{Path: Join(p.Path, len(p.Parts)+1), Detail: detail})
}

// isDelimiter is go-message's isBoundaryDelimiterLine: "--boundary",
// transport padding and the multipart's line break; the first delimiter
// line sets that line break.
func isDelimiter(line, dash []byte, p *Entity, first bool) bool {
	rest, ok := bytes.CutPrefix(line, dash)
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t")
	if first && string(rest) == "\n" {
		p.NL = "\n"
	}
	return string(rest) == p.NL
}

// isFinal is go-message's isFinalBoundary: "--boundary--", transport
// padding, and the line break or nothing.
func isFinal(line, dash []byte, nl string) bool {
	rest, ok := bytes.CutPrefix(line, dash)
	if !ok {
		return false
	}
	rest, ok = bytes.CutPrefix(rest, []byte("--"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || string(rest) == nl
}

// boundaryLike says whether a line begins with "--boundary" followed by
// what could make it a boundary line to some reader.
func boundaryLike(line, dash []byte) bool {
	rest, ok := bytes.CutPrefix(line, dash)
	return ok && (len(rest) == 0 || follows(rest[0]))
}

// follows says whether c after "--boundary" ends a part's body to
// go-message (matchAfterPrefix).
func follows(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '-'
}

// body finds where the body of part c of multipart p ends, as go-message's
// scanUntilBoundary does: at the line break before "--boundary" and a
// character that follows, or at p's end (Truncated) less a trailing
// beginning of such a line.
func (ix *indexer) body(s *src, p, c *Entity, dash []byte) error {
	start, end := c.BodyStart, p.End
	c.endErr = io.EOF
	from := start
	w, err := s.at(start, end, len(dash)+1)
	if err != nil {
		return err
	}
	// A body that begins with the delimiter is empty.
	if rest, ok := bytes.CutPrefix(w, dash); ok {
		if start+int64(len(dash)) == end || follows(rest[0]) {
			c.End, c.Next = start, start
			return nil
		}
		from = start + int64(len(dash))
	} else if start+int64(len(w)) == end && bytes.HasPrefix(dash, w) {
		ix.truncated(p, c, start)
		return nil
	}
	pat := append([]byte{'\n'}, dash...)
	skipped := from
	for {
		i, err := s.index(from, end, pat)
		if err != nil {
			return err
		}
		if i < 0 {
			break
		}
		after := i + int64(len(pat))
		from = after
		crlf := p.NL == "\r\n"
		if crlf && (i-1 < skipped || mustByte(s, i-1) != '\r') {
			if after == end || follows(mustByte(s, after)) {
				p.Ambiguous = append(p.Ambiguous, fmt.Sprintf("boundary line after a bare LF at offset %d", i+1))
			}
			continue
		}
		if after == end || follows(mustByte(s, after)) {
			c.End = i
			if crlf {
				c.End = i - 1
			}
			c.Next = c.End
			return nil
		}
		skipped = after
	}
	// No boundary: the body runs to the end, less what could be the
	// beginning of a delimiter line cut off.
	nlDash := append([]byte(p.NL), dash...)
	tailStart := max(skipped, end-int64(len(nlDash)))
	tail, err := s.at(tailStart, end, int(end-tailStart))
	if err != nil {
		return err
	}
	cut := end
	if j := bytes.LastIndexByte(tail, p.NL[0]); j >= 0 && bytes.HasPrefix(nlDash, tail[j:]) {
		cut = tailStart + int64(j)
	}
	ix.truncated(p, c, cut)
	return nil
}

func (ix *indexer) truncated(p, c *Entity, end int64) {
	c.End, c.Next, c.Truncated = end, end, true
	c.endErr = io.ErrUnexpectedEOF
	if p.endErr != io.EOF {
		c.endErr = p.endErr
	}
}

// mustByte is the byte at pos, which the caller has just seen in a window.
func mustByte(s *src, pos int64) byte {
	b, err := s.byteAt(pos)
	if err != nil {
		return 0
	}
	return b
}
