package scanner

import (
	"errors"
	"io"
	"mime/quotedprintable"

	"github.com/avstation/avstation/mimepart"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
)

// leaf is one decoded MIME part handed to the engines.
type leaf struct {
	path        string // "1", "2/1"; "" is the raw message
	fileName    string
	fileNames   []string // every name it carries (mimepart.Info.FileNames)
	contentType string
	encoding    string
	body        io.Reader // decoded content
	size        int64     // of the encoded body: at least the decoded size; 0 unknown
	// attachment: a file rather than the text of the message — a
	// Content-Disposition of attachment, a file name, or a type that is
	// not text (what ModeAttachments scans).
	attachment bool
	// inDecoded: the part is inside an attached message that had a
	// transfer encoding, which the walk decoded (coverage.go: clamd's
	// raw scan may not have).
	inDecoded bool
}

// index is the MIME structure of one message (RFC 2045/2046), built once
// and walked by the password pre-pass and by the scan. An attached message
// that has a transfer encoding is decoded into a spool buffer so that its
// parts are indexed too; close removes those buffers.
type index struct {
	m       *mimepart.Message
	buffers []*spool.Buffer
}

func (s *Scanner) newIndex(r io.ReaderAt, size int64) (*index, error) {
	opt := s.opt
	ix := &index{}
	var spoolErr error
	lim := mimepart.Limits{MaxDepth: opt.MaxDepth, MaxParts: opt.MaxParts, MaxHeaderBytes: opt.MaxHeaderBytes,
		Decode: func(e *mimepart.Entity) (io.ReaderAt, int64, error) {
			buf := s.newBuffer()
			ix.buffers = append(ix.buffers, buf)
			_, err := io.Copy(spoolWriter{buf}, decoder(e.TransferEncoding, e.Body()))
			var se *spoolError
			if errors.As(err, &se) && spoolErr == nil {
				spoolErr = err
			}
			return buf, buf.Size(), err
		}}
	m, err := mimepart.Index(r, size, lim)
	if err == nil {
		err = spoolErr
	}
	if err != nil {
		ix.close()
		return nil, err
	}
	ix.m = m
	return ix, nil
}

func (ix *index) close() {
	for _, b := range ix.buffers {
		b.Close()
	}
}

// walker calls visit for every leaf part of an index with its decoded
// content. Anomalies and limits become findings in the verdict; they never
// end the scan as clean, and the raw message is scanned whatever the walk
// thought of it.
type walker struct {
	verdict *verdict.Verdict
	visit   func(*leaf) error
}

// walk visits the parts in message order. The error is a visit error
// (engine spool, cancelled context); everything about the message itself
// is a finding.
func (w *walker) walk(ix *index) error {
	return ix.m.Walk(mimepart.Visitor{
		Leaf: func(e *mimepart.Entity, path string, body io.Reader, decoded bool) error {
			if decoded {
				// The rest of an attached message whose header could
				// not be read: scanned as an opaque part so that nothing
				// escapes the engines.
				return w.visit(&leaf{path: path, fileName: e.FileName, fileNames: e.FileNames, contentType: "message/rfc822",
					encoding: e.TransferEncoding, body: body, attachment: true,
					inDecoded: e.Decoded || e.Attached != nil && e.Attached.Decoded})
			}
			return w.visit(&leaf{path: path, fileName: e.FileName, fileNames: e.FileNames, contentType: e.ContentType,
				encoding: e.TransferEncoding, body: decoder(e.TransferEncoding, body), attachment: e.Attachment,
				size: e.End - e.BodyStart, inDecoded: e.Decoded})
		},
		Anomaly: func(a mimepart.Anomaly) {
			w.verdict.Add(verdict.Finding{Path: a.Path, FileName: a.FileName, ContentType: a.ContentType,
				Kind: verdict.KindUnscannable, Detail: a.Detail})
		},
		// The raw scan of the outer message covers an attached message
		// as a whole; the manifest lists it.
		Attached: func(e *mimepart.Entity, path string, size int64) {
			w.verdict.Manifest = append(w.verdict.Manifest, verdict.Part{Path: path, FileName: e.FileName,
				FileNames: manifestNames(e.FileNames), ContentType: "message/rfc822", Size: size})
		},
		Limit: func(a mimepart.Anomaly) {
			w.verdict.Add(verdict.Finding{Path: a.Path, Kind: verdict.KindLimitExceeded, Detail: a.Detail})
		},
	})
}

// manifestNames is a manifest entry's FileNames: all of them when there
// is more than one, else none (FileName says it).
func manifestNames(names []string) []string {
	if len(names) < 2 {
		return nil
	}
	return names
}

// uuEncodings are the Content-Transfer-Encodings of uuencode that mail
// readers decode (Python's email package, Thunderbird). The walk passes
// such a body on as it is and finds the files in it as in a text.
var uuEncodings = map[string]bool{"x-uuencode": true, "uuencode": true, "x-uue": true, "uue": true}

// decoder undoes the Content-Transfer-Encoding (RFC 2045 6). Unknown
// encodings are passed through raw: the engines still see the bytes.
func decoder(enc string, body io.Reader) io.Reader {
	switch enc {
	case "base64":
		return newBase64Reader(body)
	case "quoted-printable":
		return quotedprintable.NewReader(body)
	}
	return body
}
