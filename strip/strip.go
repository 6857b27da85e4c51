// Package strip removes infected attachments from a message and puts a short
// text/plain notice in each one's place (IceWarp's "Remove infected
// attachments"), for mail that must still reach a list.
//
// It works on the raw bytes, line by line, at the multipart boundary level
// (RFC 2046 5.1): every part that is not removed, and every boundary,
// preamble, epilogue and header around it, is copied byte for byte, with its
// own transfer encoding and line endings. Nothing is re-encoded. The input is
// read once through a bufio.Reader, so memory is bounded by the longest line
// and the part headers on the way to a removed part, not by the message.
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

	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
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
	maxLine   = 1 << 20 // longest line kept in memory
	maxHeader = 1 << 20 // largest header block of a part on the way to a removal
	maxDepth  = 64      // nesting of containers on the way to a removal
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
	bw := bufio.NewWriter(w)
	r := &rewriter{
		lr:          newLineReader(io.NewSectionReader(msg, 0, size)),
		w:           bw,
		targets:     targets,
		replacement: replacement,
	}
	if err := r.message(); err != nil {
		return Result{}, err
	}
	var missing []string
	for p, t := range targets {
		if !t.done {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Result{}, cannot("part %s not found", strings.Join(missing, ", "))
	}
	if err := bw.Flush(); err != nil {
		return Result{}, fmt.Errorf("strip: write body: %w", err)
	}
	return Result{Removed: r.removed}, nil
}

// target is a removal mapped to its MIME part.
type target struct {
	Removal
	done bool
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
