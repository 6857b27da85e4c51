package strip

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// lineReader reads a message line by line, each line with its ending ("\r\n",
// "\n", or none for a last line without one). A line is valid until the next
// call of next; unread hands the same line out again.
type lineReader struct {
	br   *bufio.Reader
	long []byte // a line longer than br's buffer, assembled
	cur  []byte
	n    int    // number of the current line, from 1
	prev string // ending of the line before cur
	held bool
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line, or io.EOF when there is none.
func (r *lineReader) next() ([]byte, error) {
	if r.held {
		r.held = false
		return r.cur, nil
	}
	if r.n > 0 {
		r.prev = ending(r.cur)
	}
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.long = append(r.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.br.ReadSlice('\n')
			if len(r.long)+len(line) > maxLine {
				return nil, cannot("line %d too long (over %d bytes)", r.n+1, maxLine)
			}
			r.long = append(r.long, line...)
		}
		line = r.long
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(line) == 0 {
		r.cur = nil
		return nil, io.EOF
	}
	r.n++
	r.cur = line
	return line, nil
}

// unread makes next return the current line again.
func (r *lineReader) unread() { r.held = true }

// ending is a line's line ending: "\r\n", "\n" or "".
func ending(line []byte) string {
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		return "\r\n"
	case bytes.HasSuffix(line, []byte("\n")):
		return "\n"
	}
	return ""
}

// frame is a multipart on the way to a removal, whose boundary lines the
// rewriter watches for.
type frame struct {
	dash  []byte // "--" + boundary
	nl    string // line ending of its boundary lines, from the first one
	parts int    // delimiter lines seen
}

// classify says whether line is a boundary line of one of the open frames:
// the index of the frame (-1 for none) and whether it is a close delimiter.
//
// RFC 2046 5.1.1: a delimiter line is "--" boundary, optional transport
// padding (spaces, tabs) and the line break; the close delimiter has "--"
// after the boundary. The innermost frame is tried first. A line that
// begins like a boundary line but is not a clean one, or that a
// go-message-style reader would not see as one (a line ending unlike the
// frame's, a CRLF frame's boundary after a bare-LF line, where the CRLF
// that belongs to the delimiter is missing), is an error: readers would
// disagree on where parts end.
func (rw *rewriter) classify(line []byte) (int, bool, error) {
	for i := len(rw.frames) - 1; i >= 0; i-- {
		f := rw.frames[i]
		if !bytes.HasPrefix(line, f.dash) {
			continue
		}
		rest := line[len(f.dash):]
		if len(rest) > 0 {
			switch rest[0] {
			case ' ', '\t', '\r', '\n', '-':
			default:
				continue // "--foobar" is not a boundary line of "foo"
			}
		}
		closing := bytes.HasPrefix(rest, []byte("--"))
		if closing {
			rest = rest[2:]
		}
		rest = bytes.TrimLeft(rest, " \t")
		end := string(rest)
		switch {
		case end == "\r\n" || end == "\n":
		case end == "" && closing: // close delimiter at the end of input
		default:
			return 0, false, cannot("line %d: malformed boundary line %.80q", rw.lr.n, line)
		}
		if f.parts == 0 {
			if closing {
				return 0, false, cannot("line %d: multipart without parts", rw.lr.n)
			}
			f.nl = end
			return i, false, nil
		}
		if end != "" && end != f.nl {
			return 0, false, cannot("line %d: boundary line ends in %q, the first ended in %q", rw.lr.n, end, f.nl)
		}
		afterHeader := rw.headerEnd == rw.lr.n-1 && i == len(rw.frames)-1
		if f.nl == "\r\n" && rw.lr.prev != "\r\n" && !afterHeader {
			return 0, false, cannot("line %d: boundary line after a bare LF in a CRLF multipart", rw.lr.n)
		}
		return i, closing, nil
	}
	return -1, false, nil
}
