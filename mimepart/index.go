package mimepart

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Limits bound the index of one message: they are the scanner's limits,
// and a message beyond one is indexed up to it.
type Limits struct {
	MaxDepth       int   // nesting of multiparts and attached messages
	MaxParts       int   // body parts of all multiparts together
	MaxHeaderBytes int64 // one header block, counted as HeaderSize does
	// Decode, when set, decodes the body of an attached message that has
	// a transfer encoding (which RFC 2046 5.2.1 forbids and senders use),
	// so that its parts are indexed too: their offsets are then into what
	// Decode returned, not into the message. It returns the decoded bytes,
	// how many, and the error that ended the decoding (nil at the end).
	// Without it such a message is indexed as a leaf.
	Decode func(e *Entity) (io.ReaderAt, int64, error)
}

// Anomaly is something about the structure that a reader reports: a
// finding's path, file name and content type, and what is wrong.
type Anomaly struct {
	Path, FileName, ContentType, Detail string
}

// Entity is one entity of a message: the message itself, a body part, or
// the message inside a message/rfc822 part. Offsets are into the raw
// message (or into the decoded body of an encoded attached message, when
// Decoded is set).
type Entity struct {
	// Path is its IMAP part number (RFC 3501 6.4.5): "" for the message,
	// "2", "3/1". An attached message has its part's path; when it is not
	// a multipart its body is part Path/1 (Leaf).
	Path string
	// Message: a message (the root, or Message of an attached one) rather
	// than a body part.
	Message bool
	// HeaderStart is where its header begins, BodyStart where its body
	// begins (after the blank line), End where the body ends: before the
	// line break that belongs to the next delimiter line (RFC 2046 5.1.1).
	// Next is where that delimiter line begins (End when there is none).
	HeaderStart, BodyStart, End, Next int64
	Header                            textproto.Header
	Info
	// Parts are a multipart's body parts, in order.
	Parts []*Entity
	// Attached is the message inside a message/rfc822 part; nil when its
	// header could not be read, when it is transfer-encoded and there is no
	// Limits.Decode, or when a limit stopped the index at this part.
	Attached *Entity
	// NL is a multipart's line break, from its first delimiter line.
	NL string
	// Closed: a multipart's close delimiter was seen.
	Closed bool
	// Truncated: the body ends at the end of its input, not at a boundary.
	Truncated bool
	// Decoded: the offsets are into the decoded body of an attached message.
	Decoded bool
	// Stopped: a limit stopped the index at this part; nothing of it is
	// indexed beyond its header.
	Stopped bool
	// Anomalies are what a reader reports about this part: for a multipart
	// after its parts (a structural error ends it), for others before the
	// content.
	Anomalies []Anomaly
	// Ambiguous lists lines of a multipart's body that look like its
	// boundary lines but are not read as such: a reader that tolerates
	// more would cut the parts elsewhere.
	Ambiguous []string
	// SplitHeader lists the lines of its header that go-message reads as
	// header lines and other readers do not (a bare CR, a NUL, white space
	// only, white space before the colon, no field name): to them the
	// header ends there. They are anomalies of a part with a transfer
	// encoding, whose body those readers decode from another byte.
	SplitHeader []string
	// Unreadable: a message whose header could not be read (the reader's
	// complaint is in Anomalies); nothing of it is indexed.
	Unreadable bool
	// Rest, for an attached message whose header could not be read, is
	// where what follows the unreadable header begins.
	Rest int64

	r      io.ReaderAt
	endErr error // what reading the body gives at End: io.EOF, or why it ends early
}

// Leaf is the path under which the part's own content is reported: a
// message that is not a multipart is the body part Path/1.
func (p *Entity) Leaf() string {
	if p.Message && !p.Multipart() {
		return Join(p.Path, 1)
	}
	return p.Path
}

// Body reads the body as it is, with its transfer encoding, from BodyStart
// to End; reading past it gives the error that ended it: io.EOF, or
// io.ErrUnexpectedEOF for a part cut off by the end of the message.
func (p *Entity) Body() io.Reader { return p.Section(p.BodyStart) }

// Section is Body from off on.
func (p *Entity) Section(off int64) io.Reader {
	sr := io.NewSectionReader(p.r, off, p.End-off)
	if p.endErr == nil || p.endErr == io.EOF {
		return sr
	}
	return io.MultiReader(sr, errReader{p.endErr})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Message is the index of one message.
type Message struct {
	Root *Entity
	Size int64
	// Limit is the limit that stopped the index, if one did: nothing
	// after the part it names is indexed.
	Limit *Anomaly
}

// Join appends part number i to path.
func Join(path string, i int) string {
	if path == "" {
		return strconv.Itoa(i)
	}
	return path + "/" + strconv.Itoa(i)
}

// Index reads the structure of the size bytes of the raw message in r
// (headers and body), once, and numbers its parts as the scanner reports
// them. It reads parts as go-message's multipart reader does, so that the
// index agrees with the readers the scanner has used: a part's body ends
// at the line break before "--boundary" followed by white space, a line
// break, "-" or the end of input; the first delimiter line's line break
// is the multipart's; a part's header ends at its blank line, wherever
// that is. Headers are held up to about twice MaxHeaderBytes, bodies not
// at all. The error is a read error of r; everything about the message is
// in the index.
func Index(r io.ReaderAt, size int64, lim Limits) (*Message, error) {
	ix := &indexer{lim: lim, msg: &Message{Size: size}}
	root, err := ix.message(&src{r: r}, 0, size, io.EOF, "", 0)
	if err != nil {
		return nil, fmt.Errorf("mimepart: index: %w", err)
	}
	if root.Unreadable {
		root.Anomalies[0].Detail = "message header: " + root.Anomalies[0].Detail
	}
	ix.msg.Root = root
	return ix.msg, nil
}

type indexer struct {
	lim     Limits
	msg     *Message
	parts   int
	stopped bool
}

func (ix *indexer) limit(path, detail string) {
	ix.stopped = true
	ix.msg.Limit = &Anomaly{Path: path, Detail: detail}
}

// message indexes a message at [start, end) of s, whose reading ends with
// endErr. A message whose header cannot be read is Unreadable, with the
// reader's complaint in Anomalies.
func (ix *indexer) message(s *src, start, end int64, endErr error, path string, depth int) (*Entity, error) {
	p := &Entity{Path: path, Message: true, HeaderStart: start, BodyStart: end, End: end, Next: end,
		r: s.r, Decoded: s.decoded, endErr: endErr}
	hd, err := ix.readHeader(s, start, end, endErr)
	if err != nil {
		return nil, err
	}
	// A header longer than the indexer holds is cut anywhere, even in a
	// line, so the reader complains: it is over the limit, not unreadable.
	if hd.err != nil && !hd.capped {
		p.Unreadable, p.Rest = true, hd.consumed
		p.Anomalies = append(p.Anomalies, Anomaly{Path: path, Detail: hd.err.Error()})
		return p, nil
	}
	p.Header, p.BodyStart, p.SplitHeader = hd.h, hd.body, hd.lines
	return p, ix.entity(s, p, hd.capped, depth)
}

// entity indexes what is in a part whose header has been read, as the
// scanner has walked it: limits first, then by its type.
func (ix *indexer) entity(s *src, p *Entity, capped bool, depth int) error {
	p.Info = ParseHeader(p.Header)
	// A header line that readers split apart moves where they begin the
	// body: with a transfer encoding, they decode other bytes.
	if !p.IdentityEncoding() {
		p.HeaderProblems = append(p.HeaderProblems, p.SplitHeader...)
	}
	leafPath := p.Path
	if p.Message {
		leafPath = Join(p.Path, 1)
	}
	if n := HeaderSize(p.Header); capped || n > ix.lim.MaxHeaderBytes {
		detail := fmt.Sprintf("max_header_bytes %d (a header of %d bytes)", ix.lim.MaxHeaderBytes, n)
		if capped {
			detail = fmt.Sprintf("max_header_bytes %d (a header of over %d bytes)", ix.lim.MaxHeaderBytes, n)
		}
		p.Stopped = true
		ix.limit(leafPath, detail)
		return nil
	}
	err := ix.content(s, p, leafPath, depth)
	if !p.Stopped {
		// After a multipart's parts, before a leaf's content, as the walk
		// reports anomalies.
		p.Anomalies = append(p.Anomalies, headerAnomalies(p)...)
	}
	return err
}

// headerAnomalies are the part's HeaderProblems, as unscannable anomalies.
func headerAnomalies(p *Entity) []Anomaly {
	var out []Anomaly
	for _, d := range p.HeaderProblems {
		out = append(out, Anomaly{Path: p.Leaf(), FileName: p.FileName, ContentType: p.ContentType, Detail: d})
	}
	return out
}

// content indexes what is in a part by its type.
func (ix *indexer) content(s *src, p *Entity, leafPath string, depth int) error {
	switch {
	case strings.HasPrefix(p.ContentType, "multipart/"):
		if depth >= ix.lim.MaxDepth {
			p.Stopped = true
			ix.limit(leafPath, fmt.Sprintf("max_depth %d", ix.lim.MaxDepth))
			return nil
		}
		if p.Boundary == "" {
			p.Anomalies = append(p.Anomalies, Anomaly{Path: leafPath, ContentType: p.ContentType,
				Detail: "multipart without a boundary; scanned as one part"})
			return nil
		}
		return ix.multipart(s, p, depth)
	case p.AttachedMessage():
		if depth >= ix.lim.MaxDepth {
			p.Stopped = true
			ix.limit(leafPath, fmt.Sprintf("max_depth %d", ix.lim.MaxDepth))
			return nil
		}
		return ix.attached(s, p, depth)
	}
	return nil
}

// attached indexes the message inside a message/rfc822 part at p's path,
// its parts below it ("3/1"); a message that is a message/rfc822 holds
// it as its part 1. A transfer-encoded one is decoded first when
// Limits.Decode says how.
func (ix *indexer) attached(s *src, p *Entity, depth int) error {
	inner := s
	start, end, endErr := p.BodyStart, p.End, p.endErr
	if !p.IdentityEncoding() {
		if ix.lim.Decode == nil {
			return nil
		}
		r, n, err := ix.lim.Decode(p)
		if err == nil {
			err = io.EOF
		}
		inner = &src{r: r, decoded: true}
		start, end, endErr = 0, n, err
	}
	path := p.Leaf() // the message itself when p is one: "1"
	m, err := ix.message(inner, start, end, endErr, path, depth+1)
	if err != nil {
		return err
	}
	p.Attached = m
	if m.Unreadable {
		m.Anomalies[0] = Anomaly{Path: path, FileName: p.FileName, ContentType: "message/rfc822",
			Detail: "attached message header: " + m.Anomalies[0].Detail}
	}
	return nil
}

// HeaderSize is the size of a header block as the limit max_header_bytes
// counts it: each field's name and value and four bytes.
func HeaderSize(h textproto.Header) int64 {
	var n int64
	for f := h.Fields(); f.Next(); {
		n += int64(len(f.Key()) + len(f.Value()) + 4)
	}
	return n
}
