package scanner

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/avstation/avstation/mimepart"
	"github.com/avstation/avstation/verdict"
)

// leaf is one decoded MIME part handed to the engines.
type leaf struct {
	path        string // "1", "2/1"; "" is the raw message
	fileName    string
	contentType string
	encoding    string
	body        io.Reader // decoded content
	// attachment: a file rather than the text of the message — a
	// Content-Disposition of attachment, a file name, or a type that is
	// not text (what ModeAttachments scans).
	attachment bool
}

// walker descends a message's MIME tree (RFC 2045/2046) and calls visit for
// every leaf part with its decoded content. It works at the header and
// multipart level of go-message's textproto, not its Entity, because it must
// descend into message/rfc822, bound depth and part count, keep decoding to
// the transfer encoding (charsets do not matter to an engine), and go on
// after a structural error. Anomalies and limits become findings in the
// verdict; they never end the scan as clean, and the raw message is scanned
// whatever the walk thought of it.
type walker struct {
	opt     Options
	verdict *verdict.Verdict
	visit   func(*leaf) error
	parts   int
	stopped bool // a limit stopped the walk
}

// walk reads the message from r. The error is a visit error (engine spool,
// cancelled context); everything about the message itself is a finding.
func (w *walker) walk(r io.Reader) error {
	br := bufio.NewReader(r)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		w.anomaly("", "", "", "message header: "+err.Error())
		return nil
	}
	return w.entity(h, br, "", "1", 0)
}

// entity handles one entity: its children at path/N when it is a container,
// its content at leafPath when it is not. IMAP numbering (RFC 3501 6.4.5):
// the body of a single-part message is part 1; the parts of a message/rfc822
// at path P are P/1, P/2, or P/1 for a single-part inner message.
func (w *walker) entity(h textproto.Header, body io.Reader, path, leafPath string, depth int) error {
	if w.stopped {
		return nil
	}
	if n := headerSize(h); n > w.opt.MaxHeaderBytes {
		w.limit(leafPath, fmt.Sprintf("max_header_bytes %d (a header of %d bytes)", w.opt.MaxHeaderBytes, n))
		return nil
	}
	ctype, params := mimepart.ContentType(h)
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		if depth >= w.opt.MaxDepth {
			w.limit(leafPath, fmt.Sprintf("max_depth %d", w.opt.MaxDepth))
			return nil
		}
		boundary := params["boundary"]
		if boundary == "" {
			w.anomaly(leafPath, "", ctype, "multipart without a boundary; scanned as one part")
			break
		}
		return w.multipart(body, boundary, path, depth)
	case ctype == "message/rfc822" || ctype == "message/global":
		if depth >= w.opt.MaxDepth {
			w.limit(leafPath, fmt.Sprintf("max_depth %d", w.opt.MaxDepth))
			return nil
		}
		// The attached message is walked like the outer one: each of its
		// parts goes to the engines; the raw scan of the outer message
		// covers it as a whole.
		return w.attachedMessage(h, body, leafPath, depth)
	}
	return w.leaf(h, body, leafPath, ctype, params)
}

func (w *walker) multipart(body io.Reader, boundary, path string, depth int) error {
	mr := textproto.NewMultipartReader(body, boundary)
	for i := 1; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		childPath := mimepart.Child(path, i)
		if err != nil {
			// Missing final boundary, garbage between parts: what was read
			// has been scanned; the rest is in the raw message scan.
			w.anomaly(childPath, "", "", strings.TrimPrefix(err.Error(), "multipart: "))
			return nil
		}
		w.parts++
		if w.parts > w.opt.MaxParts {
			w.limit(childPath, fmt.Sprintf("max_parts %d", w.opt.MaxParts))
			return nil
		}
		if err := w.entity(p.Header, p, childPath, childPath, depth+1); err != nil || w.stopped {
			return err
		}
	}
}

// attachedMessage walks a message/rfc822 part. Its transfer encoding, if any
// (RFC 2046 5.2.1 allows only 7bit, 8bit, binary, but senders do otherwise),
// is decoded first. The walk of the inner message sees everything, so the
// engines see each of its parts; the raw scan of the outer message covers
// the inner message as a whole.
func (w *walker) attachedMessage(h textproto.Header, body io.Reader, path string, depth int) error {
	dec, enc := decoder(h, body)
	name := fileName(h)
	counted := &countingReader{r: dec}
	br := bufio.NewReader(counted)
	inner, err := textproto.ReadHeader(br)
	if err != nil {
		w.anomaly(path, name, "message/rfc822", "attached message header: "+err.Error())
		// Scan the rest as an opaque part so nothing escapes the engines.
		return w.visit(&leaf{path: path, fileName: name, contentType: "message/rfc822", encoding: enc, body: br, attachment: true})
	}
	if err := w.entity(inner, br, path, mimepart.Child(path, 1), depth+1); err != nil {
		return err
	}
	io.Copy(io.Discard, br) // drain so the outer multipart reader goes on
	w.verdict.Manifest = append(w.verdict.Manifest, verdict.Part{Path: path, FileName: name, ContentType: "message/rfc822", Size: counted.n})
	return nil
}

func (w *walker) leaf(h textproto.Header, body io.Reader, path, ctype string, params map[string]string) error {
	dec, enc := decoder(h, body)
	name := fileName(h)
	if name == "" {
		name = decodeWord(params["name"])
	}
	disp, _, _ := mime.ParseMediaType(h.Get("Content-Disposition"))
	attachment := name != "" || strings.EqualFold(disp, "attachment") || !strings.HasPrefix(ctype, "text/")
	return w.visit(&leaf{path: path, fileName: name, contentType: ctype, encoding: enc, body: dec, attachment: attachment})
}

func (w *walker) anomaly(path, name, ctype, detail string) {
	w.verdict.Add(verdict.Finding{Path: path, FileName: name, ContentType: ctype, Kind: verdict.KindUnscannable, Detail: detail})
}

func (w *walker) limit(path, detail string) {
	w.stopped = true
	w.verdict.Add(verdict.Finding{Path: path, Kind: verdict.KindLimitExceeded, Detail: detail})
}

// fileName is the attachment's name: Content-Disposition filename (RFC 2183,
// with RFC 2231 continuations and charsets, which mime.ParseMediaType
// decodes), then RFC 2047 encoded words that many mailers put there anyway.
func fileName(h textproto.Header) string {
	if _, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil || params != nil {
		if n := params["filename"]; n != "" {
			return decodeWord(n)
		}
	}
	_, params := mimepart.ContentType(h)
	return decodeWord(params["name"])
}

var wordDecoder = &mime.WordDecoder{}

func decodeWord(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// decoder undoes the Content-Transfer-Encoding (RFC 2045 6). Unknown
// encodings are passed through raw: the engines still see the bytes.
func decoder(h textproto.Header, body io.Reader) (io.Reader, string) {
	enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	switch enc {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &base64Filter{r: body}), enc
	case "quoted-printable":
		return quotedprintable.NewReader(body), enc
	}
	return body, enc
}

// base64Filter drops every byte outside the base64 alphabet, as mail readers
// do: line breaks, stray spaces and garbage must not hide the content.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

func headerSize(h textproto.Header) int64 {
	var n int64
	for f := h.Fields(); f.Next(); {
		n += int64(len(f.Key()) + len(f.Value()) + 4)
	}
	return n
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
