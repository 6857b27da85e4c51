package mimepart

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// The index must cut a message where go-message's multipart reader does,
// since the scanner walked messages with it and its verdicts must not
// change. refWalk is that walk, kept here to test the index against:
// events lists what it met, in order.

func testLimits() Limits {
	return Limits{MaxDepth: 20, MaxParts: 1000, MaxHeaderBytes: 256 << 10, Decode: decodeAll}
}

func decodeAll(e *Entity) (io.ReaderAt, int64, error) {
	b, err := io.ReadAll(testDecoder(e.TransferEncoding, e.Body()))
	return bytes.NewReader(b), int64(len(b)), err
}

// testDecoder undoes a transfer encoding as the scanner does.
func testDecoder(enc string, body io.Reader) io.Reader {
	switch enc {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &b64Filter{r: body})
	case "quoted-printable":
		return quotedprintable.NewReader(body)
	}
	return body
}

type b64Filter struct{ r io.Reader }

func (f *b64Filter) Read(p []byte) (int, error) {
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

func leafEvent(path string, body io.Reader) string {
	b, err := io.ReadAll(body)
	return fmt.Sprintf("leaf %s %q err=%v", path, b, err)
}

// indexEvents walks the index of msg the way the scanner does.
func indexEvents(msg []byte, lim Limits) ([]string, *Message) {
	m, err := Index(bytes.NewReader(msg), int64(len(msg)), lim)
	if err != nil {
		return []string{"error " + err.Error()}, nil
	}
	var ev []string
	m.Walk(Visitor{
		Leaf: func(e *Entity, path string, body io.Reader, decoded bool) error {
			if !decoded {
				body = testDecoder(e.TransferEncoding, body)
			}
			ev = append(ev, leafEvent(path, body)+" name="+e.FileName)
			return nil
		},
		Anomaly:  func(a Anomaly) { ev = append(ev, fmt.Sprintf("anomaly %+v", a)) },
		Attached: func(e *Entity, path string, size int64) { ev = append(ev, fmt.Sprintf("attached %s %d", path, size)) },
		Limit:    func(a Anomaly) { ev = append(ev, fmt.Sprintf("limit %+v", a)) },
	})
	return ev, m
}

type refWalker struct {
	lim   Limits
	ev    []string
	parts int
	stop  bool
	limit string
}

func refEvents(msg []byte, lim Limits) []string {
	w := &refWalker{lim: lim}
	br := bufio.NewReader(bytes.NewReader(msg))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		w.anomaly("", "", "", "message header: "+err.Error())
		return w.ev
	}
	w.entity(h, br, "", "1", 0)
	if w.limit != "" {
		w.ev = append(w.ev, w.limit)
	}
	return w.ev
}

func (w *refWalker) anomaly(path, name, ctype, detail string) {
	w.ev = append(w.ev, fmt.Sprintf("anomaly %+v", Anomaly{Path: path, FileName: name, ContentType: ctype, Detail: detail}))
}

func (w *refWalker) setLimit(path, detail string) {
	w.stop = true
	w.limit = fmt.Sprintf("limit %+v", Anomaly{Path: path, Detail: detail})
}

func (w *refWalker) entity(h textproto.Header, body io.Reader, path, leafPath string, depth int) {
	if w.stop {
		return
	}
	if n := HeaderSize(h); n > w.lim.MaxHeaderBytes {
		w.setLimit(leafPath, fmt.Sprintf("max_header_bytes %d (a header of %d bytes)", w.lim.MaxHeaderBytes, n))
		return
	}
	in := ParseHeader(h)
	where := leafPath
	if in.Multipart() {
		where = path
	}
	problems := func() {
		for _, d := range in.HeaderProblems {
			w.anomaly(where, in.FileName, in.ContentType, d)
		}
	}
	switch {
	case strings.HasPrefix(in.ContentType, "multipart/"):
		if depth >= w.lim.MaxDepth {
			w.setLimit(leafPath, fmt.Sprintf("max_depth %d", w.lim.MaxDepth))
			return
		}
		if in.Boundary == "" {
			w.anomaly(leafPath, "", in.ContentType, "multipart without a boundary; scanned as one part")
			break
		}
		w.multipart(body, in.Boundary, path, depth)
		problems()
		return
	case in.AttachedMessage():
		if depth >= w.lim.MaxDepth {
			w.setLimit(leafPath, fmt.Sprintf("max_depth %d", w.lim.MaxDepth))
			return
		}
		problems()
		w.attached(in, body, leafPath, depth)
		return
	}
	problems()
	w.ev = append(w.ev, leafEvent(leafPath, testDecoder(in.TransferEncoding, body))+" name="+in.FileName)
}

func (w *refWalker) multipart(body io.Reader, boundary, path string, depth int) {
	mr := textproto.NewMultipartReader(body, boundary)
	for i := 1; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			return
		}
		child := Join(path, i)
		if err != nil {
			w.anomaly(child, "", "", strings.TrimPrefix(err.Error(), "multipart: "))
			return
		}
		w.parts++
		if w.parts > w.lim.MaxParts {
			w.setLimit(child, fmt.Sprintf("max_parts %d", w.lim.MaxParts))
			return
		}
		if w.entity(p.Header, p, child, child, depth+1); w.stop {
			return
		}
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (w *refWalker) attached(in Info, body io.Reader, path string, depth int) {
	counted := &countReader{r: testDecoder(in.TransferEncoding, body)}
	br := bufio.NewReader(counted)
	h, err := textproto.ReadHeader(br)
	if err != nil {
		w.anomaly(path, in.FileName, "message/rfc822", "attached message header: "+err.Error())
		w.ev = append(w.ev, leafEvent(path, br)+" name="+in.FileName)
		return
	}
	w.entity(h, br, path, Join(path, 1), depth+1)
	io.Copy(io.Discard, br)
	w.ev = append(w.ev, fmt.Sprintf("attached %s %d", path, counted.n))
}
