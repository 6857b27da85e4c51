package strip

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/avstation/avstation/mimepart"
)

// cut is one part to replace: the bytes [start, end) of the message, from
// the beginning of its header to the beginning of the delimiter line after
// it (so the line break that belongs to that line goes too, and the
// replacement ends in one), where the frame's line break is nl.
type cut struct {
	start, end int64
	nl         string
	removal    Removal
}

// plan finds the part of every target in the index, refusing where
// readers could disagree about it.
func plan(m *mimepart.Message, targets map[string]*target) ([]cut, error) {
	if m.Root.Unreadable {
		return nil, cannot("the message header: %s", m.Root.Anomalies[0].Detail)
	}
	var cuts []cut
	for p, t := range targets {
		e, nl, err := locate(m.Root, p)
		if err != nil {
			return nil, err
		}
		rm := t.Removal
		rm.Path = e.Path
		cuts = append(cuts, cut{start: e.HeaderStart, end: e.Next, nl: nl, removal: rm})
	}
	slices.SortFunc(cuts, func(a, b cut) int { return int(min(max(a.start-b.start, -1), 1)) })
	return cuts, nil
}

// locate follows path down from the message to the body part to
// replace, and gives the line break of the multipart that holds it. An
// attached message that is not a multipart is replaced whole: its body
// ("3/1") has no boundaries of its own to put a part between.
func locate(root *mimepart.Entity, path string) (*mimepart.Entity, string, error) {
	cur, nl := root, ""
	comps := strings.Split(path, "/")
	for len(comps) > 0 {
		if !cur.Message && !strings.HasPrefix(cur.ContentType, "multipart/") {
			// A body part with more of the path below it: an attached message.
			if !cur.AttachedMessage() {
				return nil, "", cannot("part %s is %s, which has no parts: %s was not found", cur.Path, cur.ContentType, path)
			}
			if !cur.IdentityEncoding() {
				// RFC 2046 5.2.1 allows only 7bit, 8bit and binary
				// here; it would have to be decoded and re-encoded.
				return nil, "", cannot("part %s: attached message with Content-Transfer-Encoding %q", cur.Path, cur.TransferEncoding)
			}
			if cur.Attached == nil || cur.Attached.Unreadable {
				return nil, "", cannot("part %s: the attached message's header cannot be read", cur.Path)
			}
			holder := cur
			if cur = cur.Attached; !cur.Multipart() {
				if len(comps) == 1 && comps[0] == "1" && !cur.Stopped {
					return holder, nl, nil
				}
				return nil, "", cannot("%s is %s, which has no parts: %s was not found", describe(cur.Leaf()), cur.ContentType, path)
			}
		}
		if err := container(cur); err != nil {
			return nil, "", err
		}
		n, err := strconv.Atoi(comps[0])
		if err != nil || n < 1 || n > len(cur.Parts) {
			return nil, "", cannot("part %s not found", path)
		}
		nl = cur.NL
		cur, comps = cur.Parts[n-1], comps[1:]
	}
	if cur.Stopped {
		return nil, "", cannot("part %s: nested too deep or too large a header", cur.Path)
	}
	return cur, nl, nil
}

// container checks a message or multipart on the way to a removal: it
// must be a multipart readers cut alike, and not sealed.
func container(e *mimepart.Entity) error {
	where := describe(e.Leaf())
	if err := refuseSealed(e.ContentType, where); err != nil {
		return err
	}
	switch {
	case e.Stopped:
		return cannot("%s: nested deeper than %d or a header over %d bytes", where, maxDepth, maxHeader)
	case e.Message && e.Path == "" && !e.Multipart():
		return cannot("%s is the whole body of the message", e.Leaf())
	case strings.HasPrefix(e.ContentType, "multipart/") && e.Boundary == "":
		return cannot("%s: multipart without a boundary", where)
	case !e.Multipart():
		return cannot("%s is %s, which has no parts: a removal inside it was not found", where, e.ContentType)
	case !e.IdentityEncoding():
		return cannot("%s: multipart with Content-Transfer-Encoding %q", where, e.TransferEncoding)
	case len(e.Anomalies) > 0:
		return cannot("%s: %s", where, e.Anomalies[0].Detail)
	case len(e.Ambiguous) > 0:
		return cannot("%s: %s could be read as a boundary line", where, e.Ambiguous[0])
	case !e.Closed:
		return cannot("%s: missing close delimiter", where)
	}
	return nil
}

// refuseSealed refuses to edit inside a signed or encrypted container.
func refuseSealed(ctype, where string) error {
	switch ctype {
	case "multipart/signed", "multipart/encrypted", "application/pkcs7-mime", "application/x-pkcs7-mime":
		return cannot("%s is %s: removing a part would break its signature or encryption", where, ctype)
	}
	return nil
}

// rewrite copies the body of the message, [from, size), to w with each cut
// replaced.
func rewrite(msg io.ReaderAt, from, size int64, cuts []cut, replacement func(Removal) string, w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, c := range cuts {
		if _, err := io.Copy(bw, io.NewSectionReader(msg, from, c.start-from)); err != nil {
			return fmt.Errorf("strip: copy body: %w", err)
		}
		if _, err := bw.WriteString(replacementPart(replacement(c.removal), c.nl)); err != nil {
			return fmt.Errorf("strip: write body: %w", err)
		}
		from = c.end
	}
	if _, err := io.Copy(bw, io.NewSectionReader(msg, from, size-from)); err != nil {
		return fmt.Errorf("strip: copy body: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("strip: write body: %w", err)
	}
	return nil
}

// replacementPart is the part that takes a removed part's place, with the
// line break nl of the multipart that holds it.
func replacementPart(text, nl string) string {
	var b strings.Builder
	b.WriteString("Content-Type: text/plain; charset=utf-8" + nl)
	b.WriteString("Content-Transfer-Encoding: 8bit" + nl)
	b.WriteString("Content-Disposition: inline" + nl)
	b.WriteString(nl)
	b.WriteString(replacementText(text, nl))
	b.WriteString(nl)
	return b.String()
}

func describe(path string) string {
	if path == "" || path == "1" {
		return "the message"
	}
	return "part " + path
}
