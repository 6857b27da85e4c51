package quarantine

import (
	"github.com/avstation/avstation/mimepart"

	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/avstation/avstation/verdict"
)

// Bounds of the index ExtractParts reads. The scanner refused messages
// beyond them long before one reaches quarantine; beyond them a path
// keeps the nearest part indexed that holds it.
const (
	maxHeader = 4 << 20
	maxDepth  = 256
	maxParts  = 100000
)

// ExtractParts writes to w a new message holding only the given MIME parts
// of msg, for "quarantine only infected attachments". The message is
// multipart/mixed, From the original From (MAILER-DAEMON when there is
// none), with Subject "Quarantined attachments of: <original subject>".
//
// Paths are IMAP part numbers (RFC 3501 6.4.5) as the scanner reports them:
// "2" is the second top-level part, "3/1" the first part inside the third,
// "1" the body of a single-part message. An archive member's path,
// "2/x.zip/y.exe", means the MIME part that holds the archive, "2". Each
// part is copied byte for byte with its header, transfer encoding and all,
// so what the engines flagged is exactly what is kept. The body of a
// single-part message keeps only its Content-* header fields. A path that
// cannot be followed to the end (inside a message/rfc822 that is itself
// base64-encoded, past a broken multipart) keeps the nearest part that
// holds it; "" or "0", or a path that leads nowhere at all, keeps the whole
// message as a message/rfc822 part. Nothing a path names is ever dropped.
// Parts are found through the message's mimepart index, cut where the
// scanner cut them.
func ExtractParts(msg io.ReaderAt, size int64, paths []string, w io.Writer) error {
	if len(paths) == 0 {
		return errors.New("quarantine: extract parts: no parts given")
	}
	m, err := mimepart.Index(msg, size, mimepart.Limits{MaxDepth: maxDepth, MaxParts: maxParts, MaxHeaderBytes: maxHeader})
	if err != nil {
		return fmt.Errorf("quarantine: extract parts: %w", err)
	}
	root := m.Root
	var picked []pick
	for _, path := range mimePaths(paths) {
		picked = append(picked, find(root, path))
	}
	picked = outermost(picked)

	var b bytes.Buffer
	from := unfold(root.Header.Get("From"))
	if from == "" {
		from = "MAILER-DAEMON"
	}
	boundary := newBoundary()
	fmt.Fprintf(&b, "From: %s\r\n", from)
	fmt.Fprintf(&b, "Subject: Quarantined attachments of: %s\r\n", unfold(root.Header.Get("Subject")))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	if id := unfold(root.Header.Get("Message-Id")); id != "" {
		fmt.Fprintf(&b, "References: %s\r\n", id)
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	for _, e := range picked {
		if _, err := io.WriteString(w, "--"+boundary+"\r\n"); err != nil {
			return err
		}
		if err := copyPick(w, msg, size, e); err != nil {
			return fmt.Errorf("quarantine: extract parts: %w", err)
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, "--"+boundary+"--\r\n")
	return err
}

// InfectedParts returns the MIME paths of the parts in which the verdict
// found a virus, in the form ExtractParts takes, each once.
func InfectedParts(v *verdict.Verdict) []string {
	if v == nil {
		return nil
	}
	var paths []string
	for _, f := range v.Findings {
		if f.Kind == verdict.KindVirus {
			paths = append(paths, f.Path)
		}
	}
	return mimePaths(paths)
}

// mimePaths cuts each path to its MIME part and removes duplicates.
func mimePaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		if m := mimepart.Part(p); !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// pick is a part to keep: a body part, the body of a single-part
// message, or the whole message.
type pick struct {
	e *mimepart.Entity
	// bodyOnly: the body of a single-part message, kept with only the
	// Content-* fields of its header.
	bodyOnly bool
}

// find follows path from the message root through the index, keeping the
// deepest part reached.
func find(root *mimepart.Entity, path string) pick {
	best := pick{e: root}
	if path == "" {
		return best
	}
	cur := root
	comps := strings.Split(path, "/")
	for len(comps) > 0 {
		n, _ := strconv.Atoi(comps[0])
		comps = comps[1:]
		if cur.Message && !cur.Multipart() {
			// Part 1 of a single-part message is its body.
			if n != 1 {
				return best
			}
			best = pick{e: cur, bodyOnly: true}
		} else {
			if !cur.Multipart() || n < 1 || n > len(cur.Parts) {
				return best
			}
			cur = cur.Parts[n-1]
			best = pick{e: cur}
		}
		if len(comps) > 0 && !cur.Multipart() {
			// The message inside a message/rfc822 part, when it is there
			// as bytes: one with a transfer encoding (RFC 2046 5.2.1
			// allows none) would have to be decoded, and could not be
			// copied.
			if cur.Attached == nil || cur.Attached.Unreadable || !cur.IdentityEncoding() {
				return best
			}
			cur = cur.Attached
		}
	}
	return best
}

// copyPick writes one picked part as a body part.
func copyPick(w io.Writer, msg io.ReaderAt, size int64, p pick) error {
	e := p.e
	switch {
	case e.Message && !p.bodyOnly:
		// The whole message, as an attachment.
		if _, err := io.WriteString(w, "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"message.eml\"\r\n\r\n"); err != nil {
			return err
		}
		return copyRange(w, msg, 0, size)
	case p.bodyOnly:
		raw := make([]byte, e.BodyStart-e.HeaderStart)
		if _, err := msg.ReadAt(raw, e.HeaderStart); err != nil && !(err == io.EOF && len(raw) == 0) {
			return fmt.Errorf("header at offset %d: %w", e.HeaderStart, err)
		}
		for _, f := range rawFields(raw) {
			if len(f) >= 8 && strings.EqualFold(string(f[:8]), "content-") {
				if _, err := w.Write(f); err != nil {
					return err
				}
			}
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return err
		}
		return copyRange(w, msg, e.BodyStart, e.End)
	}
	return copyRange(w, msg, e.HeaderStart, e.End)
}

func copyRange(w io.Writer, msg io.ReaderAt, start, end int64) error {
	_, err := io.Copy(w, io.NewSectionReader(msg, start, end-start))
	return err
}

// outermost drops picked entities that lie inside another picked one, and
// orders the rest as they are in the message.
func outermost(ps []pick) []pick {
	slices.SortFunc(ps, func(a, b pick) int {
		if a.e.HeaderStart != b.e.HeaderStart {
			return int(min(max(a.e.HeaderStart-b.e.HeaderStart, -1), 1))
		}
		return int(min(max(b.e.End-a.e.End, -1), 1)) // the larger first
	})
	var out []pick
	for _, p := range ps {
		if n := len(out); n > 0 && p.e.HeaderStart >= out[n-1].e.HeaderStart && p.e.End <= out[n-1].e.End {
			continue
		}
		out = append(out, p)
	}
	return out
}

// rawFields splits a raw header into fields, each with its continuation
// lines and line breaks as they were.
func rawFields(raw []byte) [][]byte {
	var fields [][]byte
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n') + 1
		if i == 0 {
			i = len(raw)
		}
		line := raw[:i]
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			last := fields[len(fields)-1]
			fields[len(fields)-1] = last[:len(last)+len(line)] // contiguous in raw
		} else {
			fields = append(fields, line)
		}
		raw = raw[i:]
	}
	return fields
}

// unfold makes a header value one line (RFC 5322 2.2.3).
func unfold(s string) string {
	s = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(s)
	return strings.TrimSpace(s)
}

func newBoundary() string {
	var r [18]byte
	_, _ = rand.Read(r[:])
	return "avstation-q-" + hex.EncodeToString(r[:])
}
