package strip

import (
	"github.com/avstation/avstation/mimepart"

	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// rewriter copies a message body to w, replacing the target parts. It
// descends only into the containers that hold a target; every other part is
// copied line by line up to the next boundary line of an open frame,
// without being parsed.
type rewriter struct {
	lr          *lineReader
	w           *bufio.Writer
	targets     map[string]*target
	replacement func(Removal) string
	frames      []*frame
	headerEnd   int // line number of the blank line that ended the last header read
	removed     []Removal
}

// replaceSignal asks the multipart that holds an attached message to
// replace it whole: the removal is the single body of the attached message,
// which has no boundaries of its own to put a part between.
type replaceSignal struct{ t *target }

// message reads the top-level header (not written: only the body is
// rewritten) and processes the body, IMAP-numbered as scanner/walk.go does:
// the parts of a multipart message are 1, 2, …; a single-part body is 1.
func (rw *rewriter) message() error {
	_, h, err := rw.readHeader(true)
	if err != nil {
		return err
	}
	sig, err := rw.entity(h, nil, "", "1", 0)
	if err != nil {
		return err
	}
	if sig != nil {
		return cannot("%s is the whole body of the message", sig.t.Path)
	}
	return nil
}

// entity processes an entity whose header h (raw, not yet written) has been
// read and which holds a target: its parts are path/N when it is a
// multipart, its body is leafPath when it is the body of a message (path ""
// for the message itself, P for the message/rfc822 part at P).
func (rw *rewriter) entity(h textproto.Header, raw []byte, path, leafPath string, depth int) (*replaceSignal, error) {
	if depth > maxDepth {
		return nil, cannot("part %s: nested deeper than %d", leafPath, maxDepth)
	}
	ctype, params := mimepart.ContentType(h)
	multipart := strings.HasPrefix(ctype, "multipart/")
	where := "part " + leafPath
	if path == "" {
		where = "the message"
		if err := refuseSealed(ctype, where); err != nil {
			return nil, err
		}
	}
	if t := rw.targets[leafPath]; t != nil && path != leafPath && !multipart {
		return &replaceSignal{t: t}, nil
	}
	if err := refuseSealed(ctype, where); err != nil {
		return nil, err
	}
	switch {
	case multipart:
		if !identityEncoding(h) {
			return nil, cannot("%s: multipart with Content-Transfer-Encoding %q", where, h.Get("Content-Transfer-Encoding"))
		}
		boundary := params["boundary"]
		if boundary == "" {
			return nil, cannot("%s: multipart without a boundary", where)
		}
		if err := rw.write(raw); err != nil {
			return nil, err
		}
		return nil, rw.multipart(boundary, path, depth)
	case ctype == "message/rfc822" || ctype == "message/global":
		// RFC 2046 5.2.1 allows only 7bit, 8bit and binary here; an
		// encoded attached message would have to be decoded and re-encoded.
		if !identityEncoding(h) {
			return nil, cannot("%s: attached message with Content-Transfer-Encoding %q", where, h.Get("Content-Transfer-Encoding"))
		}
		innerRaw, inner, err := rw.readHeader(false)
		if err != nil {
			return nil, err
		}
		all := make([]byte, 0, len(raw)+len(innerRaw))
		all = append(append(all, raw...), innerRaw...)
		return rw.entity(inner, all, leafPath, leafPath+"/1", depth+1)
	}
	return nil, cannot("%s is %s, which has no parts: a removal inside it was not found", where, ctype)
}

// refuseSealed refuses to edit inside a signed or encrypted container.
func refuseSealed(ctype, where string) error {
	switch ctype {
	case "multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime":
		return cannot("%s is %s: removing a part would break its signature or encryption", where, ctype)
	}
	return nil
}

// multipart processes the body of a multipart whose header has been
// written, from its preamble to the end of its epilogue.
func (rw *rewriter) multipart(boundary, path string, depth int) error {
	f := &frame{dash: []byte("--" + boundary)}
	rw.frames = append(rw.frames, f)
	me := len(rw.frames) - 1
	// Preamble.
	if err := rw.copyToBoundary(true); err != nil {
		return rw.unclosed(path, err)
	}
	for {
		line, err := rw.lr.next()
		if err != nil {
			return err
		}
		i, closing, err := rw.classify(line)
		if err != nil {
			return err
		}
		if i != me {
			return cannot("%s: missing close delimiter", describe(path))
		}
		if err := rw.write(line); err != nil {
			return err
		}
		if closing {
			break
		}
		f.parts++
		if err := rw.part(f, mimepart.Child(path, f.parts), depth); err != nil {
			return err
		}
	}
	// Epilogue: up to a boundary line of an outer frame or the end.
	rw.frames = rw.frames[:me]
	err := rw.copyToBoundary(true)
	if err == io.EOF {
		err = nil
	}
	return err
}

// part processes one part of frame f, after its delimiter line, up to the
// next boundary line, which it leaves unread.
func (rw *rewriter) part(f *frame, path string, depth int) error {
	t := rw.targets[path]
	if t == nil && rw.holdsTarget(path) {
		raw, h, err := rw.readHeader(false)
		if err != nil {
			return err
		}
		sig, err := rw.entity(h, raw, path, path, depth+1)
		if err != nil {
			return err
		}
		if sig == nil {
			// Whatever is left (an inner epilogue) is copied.
			return rw.unclosed(path, rw.copyToBoundary(true))
		}
		t = sig.t
	}
	if t == nil {
		return rw.unclosed(path, rw.copyToBoundary(true))
	}
	if err := rw.writeReplacement(t.Removal, f.nl); err != nil {
		return err
	}
	t.done = true
	rm := t.Removal
	rm.Path = path
	rw.removed = append(rw.removed, rm)
	return rw.unclosed(path, rw.copyToBoundary(false))
}

// unclosed turns the end of input inside a multipart into ErrCannotStrip.
func (rw *rewriter) unclosed(path string, err error) error {
	if err == io.EOF {
		return cannot("%s: missing close delimiter before the end of the message", describe(path))
	}
	return err
}

// copyToBoundary copies lines (or skips them when write is false) up to a
// boundary line of an open frame, which it leaves unread. It returns io.EOF
// when the input ends first.
func (rw *rewriter) copyToBoundary(write bool) error {
	for {
		line, err := rw.lr.next()
		if err != nil {
			return err
		}
		i, _, err := rw.classify(line)
		if err != nil {
			return err
		}
		if i >= 0 {
			rw.lr.unread()
			return nil
		}
		if write {
			if err := rw.write(line); err != nil {
				return err
			}
		}
	}
}

// readHeader reads a header block up to and with its blank line, raw and
// parsed. A part's header must end with a blank line before the next
// boundary line; the message's may end with the input.
func (rw *rewriter) readHeader(top bool) ([]byte, textproto.Header, error) {
	var raw []byte
	for {
		line, err := rw.lr.next()
		if err == io.EOF && top {
			raw = append(raw, "\r\n"...)
			break
		}
		if err == io.EOF {
			return nil, textproto.Header{}, cannot("line %d: part header not ended before the end of the message", rw.lr.n)
		}
		if err != nil {
			return nil, textproto.Header{}, err
		}
		if i, _, err := rw.classify(line); err != nil || i >= 0 {
			return nil, textproto.Header{}, cannot("line %d: part header not ended before a boundary line", rw.lr.n)
		}
		if len(raw)+len(line) > maxHeader {
			return nil, textproto.Header{}, cannot("line %d: header over %d bytes", rw.lr.n, maxHeader)
		}
		raw = append(raw, line...)
		if ending(line) == string(line) {
			rw.headerEnd = rw.lr.n
			break
		}
	}
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, textproto.Header{}, cannot("line %d: header: %v", rw.lr.n, err)
	}
	return raw, h, nil
}

// holdsTarget says whether a target lies strictly inside path.
func (rw *rewriter) holdsTarget(path string) bool {
	for p := range rw.targets {
		if strings.HasPrefix(p, path+"/") {
			return true
		}
	}
	return false
}

func (rw *rewriter) write(b []byte) error {
	if _, err := rw.w.Write(b); err != nil {
		return err
	}
	return nil
}

// writeReplacement writes the part that takes a removed part's place, with
// the line ending nl of the boundary line before it.
func (rw *rewriter) writeReplacement(rm Removal, nl string) error {
	var b strings.Builder
	b.WriteString("Content-Type: text/plain; charset=utf-8" + nl)
	b.WriteString("Content-Transfer-Encoding: 8bit" + nl)
	b.WriteString("Content-Disposition: inline" + nl)
	b.WriteString(nl)
	b.WriteString(replacementText(rw.replacement(rm), nl))
	b.WriteString(nl)
	_, err := rw.w.WriteString(b.String())
	return err
}

// identityEncoding says whether the entity's Content-Transfer-Encoding
// leaves its lines as they are (RFC 2045 6.1).
func identityEncoding(h textproto.Header) bool {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

func describe(path string) string {
	if path == "" {
		return "the message"
	}
	return "part " + path
}
