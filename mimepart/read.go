package mimepart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-message/textproto"
)

// winSize is how much of the message src holds at once.
const winSize = 64 << 10

// src reads a message through a window of it, so that lines and searches
// cost one ReadAt per window, not per line.
type src struct {
	r       io.ReaderAt
	decoded bool
	buf     []byte
	off     int64 // buf holds [off, off+len(buf))
}

// at returns the bytes from pos on, at least need of them (or up to end).
func (s *src) at(pos, end int64, need int) ([]byte, error) {
	want := min(int64(need), end-pos)
	if pos >= s.off && pos+want <= s.off+int64(len(s.buf)) {
		return s.buf[pos-s.off : min(int64(len(s.buf)), end-s.off)], nil
	}
	n := min(int64(max(winSize, need)), end-pos)
	if int64(cap(s.buf)) < n {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	s.off = pos
	if m, err := s.r.ReadAt(s.buf, pos); int64(m) < n {
		s.buf = s.buf[:0]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading at offset %d: %w", pos, err)
	}
	return s.buf, nil
}

// piece returns the bytes from pos up to and with the next LF, or up to
// end, or a whole window of a longer line.
func (s *src) piece(pos, end int64) ([]byte, error) {
	w, err := s.at(pos, end, 1)
	if err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(w, '\n'); i >= 0 {
		return w[:i+1], nil
	}
	if len(w) < winSize && pos+int64(len(w)) < end {
		if w, err = s.at(pos, end, winSize); err != nil {
			return nil, err
		}
		if i := bytes.IndexByte(w, '\n'); i >= 0 {
			return w[:i+1], nil
		}
	}
	return w, nil
}

// index finds pat in [from, end): its offset, or -1.
func (s *src) index(from, end int64, pat []byte) (int64, error) {
	for pos := from; end-pos >= int64(len(pat)); {
		w, err := s.at(pos, end, 2*len(pat))
		if err != nil {
			return 0, err
		}
		if i := bytes.Index(w, pat); i >= 0 {
			return pos + int64(i), nil
		}
		if pos+int64(len(w)) >= end {
			break
		}
		pos += int64(len(w) - len(pat) + 1)
	}
	return -1, nil
}

func (s *src) byteAt(pos int64) (byte, error) {
	w, err := s.at(pos, pos+1, 1)
	if err != nil {
		return 0, err
	}
	return w[0], nil
}

// header is a header block as read.
type header struct {
	h        textproto.Header
	body     int64 // where the body begins
	consumed int64 // how far the header reader read, when it failed
	capped   bool  // longer than the indexer holds: h has its beginning
	err      error // the header reader's complaint
	// lines are the header's lines that some readers end the header at
	// (lineProblems).
	lines []string
}

// readHeader reads the header block at [start, end) up to and with its
// blank line, and parses it as go-message does; a header without a blank
// line runs to end. The error is a read error of the message.
func (ix *indexer) readHeader(s *src, start, end int64, endErr error) (header, error) {
	limit := 2*ix.lim.MaxHeaderBytes + winSize
	var raw []byte
	pos, lineStart, blank, capped := start, true, false, false
	for pos < end {
		pc, err := s.piece(pos, end)
		if err != nil {
			return header{}, err
		}
		raw = append(raw, pc...)
		pos += int64(len(pc))
		if lineStart && (string(pc) == "\n" || string(pc) == "\r\n") {
			blank = true
			break
		}
		lineStart = pc[len(pc)-1] == '\n'
		if int64(len(raw)) > limit {
			capped = true
			break
		}
	}
	br := bytes.NewReader(raw)
	var rd io.Reader = br
	if !blank && !capped && endErr != io.EOF {
		rd = io.MultiReader(br, errReader{endErr})
	}
	bb := bufio.NewReader(rd)
	h, err := textproto.ReadHeader(bb)
	consumed := start + int64(len(raw)) - int64(br.Len()) - int64(bb.Buffered())
	return header{h: h, body: pos, consumed: consumed, capped: capped, err: err, lines: lineProblems(raw)}, nil
}

// lineProblems lists the lines of a raw header block that go-message
// reads as header lines and other readers do not: lines that end at a
// bare CR (Python's email package, Thunderbird and clamd break lines
// there, so "\r\r" is a blank line to them), hold a NUL (C string
// readers end the line there), continue a field with white space only
// (some readers take that for the blank line, clamd's comments say), or
// have white space before the colon or no name (Python's email package
// takes that for the first line of the body), or a field name with a
// comment or an encoded word in it (clamd takes "Content-Type(x):" for a
// Content-Type the others do not see). To such a reader the body
// begins with the header's last lines, and a base64 body decodes to
// other bytes (mimepart: an anomaly when the part has a transfer
// encoding).
func lineProblems(raw []byte) []string {
	var out []string
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // the blank line
		}
		var why string
		switch colon := bytes.IndexByte(line, ':'); {
		case bytes.IndexByte(line, '\r') >= 0:
			why = "a bare CR"
		case bytes.IndexByte(line, 0) >= 0:
			why = "a NUL"
		case line[0] == ' ' || line[0] == '\t':
			if len(bytes.TrimLeft(line, " \t\v\f")) == 0 {
				why = "white space only"
			}
		case colon == 0:
			why = "no field name"
		case colon > 0 && (line[colon-1] == ' ' || line[colon-1] == '\t'):
			why = "white space before the colon"
		case colon > 0 && (bytes.IndexByte(line[:colon], '(') >= 0 || bytes.Contains(line[:colon], []byte("=?"))):
			// clamd reads the name without its comments and with its
			// encoded words decoded: "Content-Type(x):" is a Content-Type.
			why = "a comment or an encoded word in the field name"
		}
		if why != "" {
			out = append(out, fmt.Sprintf("header line %.80q with %s: some readers end the header there", line, why))
		}
	}
	return out
}

// maxNextLine is go-message's multipart reader's buffer: a line between
// parts longer than that is an error to it.
const maxNextLine = 4096

var errBufferFull = errors.New("bufio: buffer full")

// nextLine reads one line between parts as go-message's NextPart does:
// with its LF, at most maxNextLine bytes (else errBufferFull), and the
// stream's end error with the last one (lerr). err is a read error.
func (s *src) nextLine(pos, end int64, endErr error) (line []byte, lerr, err error) {
	w, err := s.at(pos, end, maxNextLine)
	if err != nil {
		return nil, nil, err
	}
	w = w[:min(len(w), maxNextLine)]
	if i := bytes.IndexByte(w, '\n'); i >= 0 {
		return w[:i+1], nil, nil
	}
	if pos+int64(len(w)) < end {
		return w, errBufferFull, nil
	}
	return w, endErr, nil
}
