// Package strip removes infected attachments from a message and puts a short
// text/plain notice in each one's place (IceWarp's "Remove infected
// attachments"), for mail that must still reach a list.
//
// It works on the raw bytes, at the multipart boundary level (RFC 2046
// 5.1), by the offsets of the message's mimepart index, the same index the
// scanner walked: each removed part's bytes, from its header to the
// delimiter line after it, are replaced; every other part, and every
// boundary, preamble, epilogue and header around it, is copied byte for
// byte, with its own transfer encoding and line endings. Nothing is
// re-encoded, and no body is held in memory.
//
// Stripping is strict where readers could disagree: a boundary line with odd
// trailing text or a line ending unlike the others, a missing close
// delimiter, an encoded message/rfc822 on the way, or a signed or encrypted
// container on the way each make it fail with ErrCannotStrip, and the caller
// rejects instead. A stripper that guesses could leave the threat in place
// for a mail reader that parses the message another way than the scanner did.
package strip

import (
	"github.com/avstation/avstation/mimepart"

	"errors"
	"fmt"
	"io"
	"strings"
)

// Removal is one part to remove, named by its MIME path as in verdict
// findings: "2", "3/1". An archive member path such as
// "2/invoice.zip/doc.exe" stands for its MIME part "2": the leading
// all-digit segments are the MIME path.
type Removal struct {
	Path     string
	FileName string // for the replacement text
	Threat   string // for the replacement text
	// Kind is why it goes, for the replacement text: "virus" (the
	// default), "banned-name", "encrypted", or another finding kind.
	Kind string
}

// Result says what was done.
type Result struct {
	// Removed holds one entry per replaced part, in message order. Its Path
	// is the MIME path of the part that was replaced ("2" for the finding
	// "2/invoice.zip/doc.exe"; "3" for "3/1" when 3 is an attached
	// single-part message); FileName and Threat are those of the first
	// removal given for that part, completed from later ones when empty.
	Removed []Removal
}

// ErrCannotStrip is wrapped by every error that says the message cannot be
// stripped safely; the caller rejects the message then.
var ErrCannotStrip = errors.New("cannot strip attachment")

// Limits that bound memory and recursion on hostile input.
const (
	maxHeader = 1 << 20 // largest header block of a part
	maxDepth  = 256     // nesting of containers: above the scanner's max_depth (128), so what it found can be cut
	maxParts  = 100000  // parts of the message
)

func cannot(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCannotStrip, fmt.Sprintf(format, args...))
}

// Body rewrites the body of a message: what follows its header block, which
// the milter replaces as a whole (header changes are made separately). msg
// holds the raw message, header and body, size bytes long. Each removal's
// part is replaced by a text/plain part whose text is replacement(removal)
// (DefaultReplacement when nil). The new body is written to w.
//
// Body fails with an error wrapping ErrCannotStrip when a removal cannot be
// done: the removal is the whole body ("1" of a single-part message, "0" or
// ""), the way to the part passes through multipart/signed,
// multipart/encrypted or application/pkcs7-mime (stripping would break the
// signature or the encryption), the structure around the part is unparseable
// (no boundary, part not found, no close delimiter, ambiguous boundary
// lines), or the part lies inside a message/rfc822 whose structure cannot be
// followed (transfer-encoded). Other errors are read and write errors. On any
// error what was written to w must be discarded.
func Body(msg io.ReaderAt, size int64, removals []Removal, replacement func(Removal) string, w io.Writer) (Result, error) {
	if len(removals) == 0 {
		return Result{}, cannot("no removal given")
	}
	targets, err := normalize(removals)
	if err != nil {
		return Result{}, err
	}
	if replacement == nil {
		replacement = DefaultReplacement
	}
	m, err := mimepart.Index(msg, size, mimepart.Limits{MaxDepth: maxDepth, MaxParts: maxParts, MaxHeaderBytes: maxHeader})
	if err != nil {
		return Result{}, fmt.Errorf("strip: %w", err)
	}
	cuts, err := plan(m, targets)
	if err != nil {
		return Result{}, err
	}
	if err := rewrite(msg, m.Root.BodyStart, size, cuts, replacement, w); err != nil {
		return Result{}, err
	}
	res := Result{}
	for _, c := range cuts {
		res.Removed = append(res.Removed, c.removal)
	}
	return res, nil
}

// target is a removal mapped to its MIME part.
type target struct {
	Removal
}

// normalize maps removals to MIME paths, merges duplicates and drops those
// inside a part that is removed anyway.
func normalize(removals []Removal) (map[string]*target, error) {
	targets := map[string]*target{}
	for _, rm := range removals {
		p := mimepart.Part(rm.Path)
		if p == "" {
			return nil, cannot("%q is the whole message", rm.Path)
		}
		if t, ok := targets[p]; ok {
			if t.FileName == "" {
				t.FileName = rm.FileName
			}
			if t.Threat == "" {
				t.Threat = rm.Threat
			}
			continue
		}
		rm.Path = p
		targets[p] = &target{Removal: rm}
	}
	for p := range targets {
		for q := range targets {
			if strings.HasPrefix(p, q+"/") {
				delete(targets, p)
				break
			}
		}
	}
	return targets, nil
}
