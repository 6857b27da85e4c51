package scanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/avstation/avstation/scanner/archive"
	"github.com/avstation/avstation/scanner/textenc"
	"github.com/avstation/avstation/spool"
	"github.com/avstation/avstation/verdict"
)

// isText: a part whose text a mail reader shows, and in which it decodes
// uuencoded, yEnc and BinHex files.
func isText(contentType string) bool {
	return contentType == "" || strings.HasPrefix(contentType, "text/")
}

// openEmbedded examines every file encoded in the text of a MIME part
// (textenc) as an attachment of its own: path "1/eicar.com", its name for
// the file-name rules, sent to the engines in every mode but
// ModeMessage, opened when it is an archive. Each counts against
// max_member_size and the message's budgets (max_members,
// max_expanded_bytes), as an archive member does.
//
// A block cut short (no end line: a post split in parts, a truncated
// message) is examined as decoded and is no finding: every decoder gives
// at most that. Lines of another encoding between its data lines are an
// unscannable finding, since there decoders disagree and what a reader
// saves may not be what was scanned.
func (s *Scanner) openEmbedded(ctx context.Context, st *scanState, it item, buf *spool.Buffer) error {
	f := textenc.NewFinderSize(buf.Reader(), buf.Size())
	seen := map[string]bool{}
	for {
		b, content, err := f.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return &spoolError{err}
		}
		if why := st.budget.Why(); why != nil {
			st.v.Add(verdict.Finding{Path: it.path, FileName: it.fileName, ContentType: it.contentType,
				Kind: verdict.KindLimitExceeded, Detail: fmt.Sprintf("%v (files encoded in the text)", why)})
			return nil
		}
		if err := s.examineBlock(ctx, st, it, b, content, seen); err != nil {
			return err
		}
	}
}

// examineBlock decodes one block into a spool buffer and examines it.
func (s *Scanner) examineBlock(ctx context.Context, st *scanState, parent item, b *textenc.Block, content io.Reader, seen map[string]bool) error {
	cbuf := s.newBuffer()
	defer cbuf.Close()
	lr := &limitedReader{r: content, max: s.opt.MaxMemberSize, left: s.opt.MaxMemberSize, budget: st.budget}
	_, err := io.Copy(spoolWriter{cbuf}, lr)
	var limit *archive.ErrLimit
	if err != nil && !errors.As(err, &limit) {
		var spoolErr *spoolError
		if errors.As(err, &spoolErr) {
			return err
		}
		return &spoolError{err} // reading the part's own spool buffer
	}
	name := blockName(b.Name)
	// Every file is sent: clamd's mail parser decodes uuencode and BinHex
	// only in some texts (ClamAV 1.4.6: not a begin line of mode 0644 or
	// 7, not uuencode in quoted-printable or after a line of a base64
	// text, not BinHex after a line of text; TestAttackEmbeddedClamdMisses),
	// which the walk, like a mail reader, decodes.
	child := item{path: parent.path + "/" + segment(name, b.Encoding, seen), fileName: name,
		contentType: "application/octet-stream", scan: true, named: true,
		level: parent.level + 1, unseen: true}
	if limit != nil {
		st.v.Add(verdict.Finding{Path: child.path, FileName: name, Kind: verdict.KindLimitExceeded,
			Detail: fmt.Sprintf("%s file in the text: %v", b.Encoding, limit)})
		if limit.Limit == "max_members" {
			return nil // nothing of it was decoded
		}
	}
	if b.Gaps > 0 {
		st.v.Add(verdict.Finding{Path: child.path, FileName: name, Kind: verdict.KindUnscannable,
			Detail: fmt.Sprintf("%s file in the text: %d lines between its encoded lines are not %s; mail readers decode them differently",
				b.Encoding, b.Gaps, b.Encoding)})
	}
	return s.examine(ctx, st, child, cbuf)
}

// blockName is the file name a reader would save: the last segment of
// either separator, without control characters.
func blockName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	if name == "." || name == "/" {
		return ""
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, name)
}

// segment is the block's last path segment: its name, unless that is
// missing, would read as a MIME part number, or was taken by an earlier
// block of the same part.
func segment(name string, enc textenc.Encoding, seen map[string]bool) string {
	seg := name
	if seg == "" {
		seg = "(" + string(enc) + ")"
	} else if _, err := strconv.Atoi(seg); err == nil {
		seg += " (" + string(enc) + ")"
	}
	base := seg
	for i := 2; seen[seg]; i++ {
		seg = fmt.Sprintf("%s (%d)", base, i)
	}
	seen[seg] = true
	return seg
}

// limitedReader ends a decoded file at max_member_size, or when the
// message's max_expanded_bytes or max_members are used up, with an
// *archive.ErrLimit. Its first byte books it as a member.
type limitedReader struct {
	r         io.Reader
	max, left int64
	budget    *archive.Budget
	booked    bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 && !l.booked {
		if merr := l.budget.TakeMember(); merr != nil {
			return 0, merr
		}
		l.booked = true
	}
	if int64(n) > l.left {
		return int(l.left), &archive.ErrLimit{Limit: "max_member_size", Value: l.max}
	}
	l.left -= int64(n)
	if fit, berr := l.budget.Take(int64(n)); berr != nil {
		return int(fit), berr
	}
	return n, err
}
