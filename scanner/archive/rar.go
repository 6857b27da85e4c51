package archive

import (
	"errors"
	"io"

	"github.com/nwaples/rardecode/v2"
)

// rar walks a RAR 1.5-4.x or 5 archive in one pass. rardecode's reader
// cannot go on after an error of Next, so the first one ends the walk.
func (w *walker) rar(r io.Reader) error {
	c := &counter{}
	rr, err := rardecode.NewReader(countingReader{r, c}, rardecode.MaxDictionarySize(maxDictionary))
	if err != nil {
		w.rarProblem("", err)
		return nil
	}
	for {
		h, err := rr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			w.rarProblem("", err)
			return nil
		}
		if err := w.next(); err != nil {
			return err
		}
		if h.IsDir || h.LinkType != 0 {
			continue
		}
		m := Member{Name: cleanName(h.Name), Size: h.UnPackedSize}
		if h.UnKnownSize {
			m.Size = -1
		}
		w.checkName(h.Name, m.Name)
		if h.Encrypted {
			if err := w.encrypted(m, ""); err != nil {
				return err
			}
			continue
		}
		readErr, err := w.member(m, rr, c.since())
		if err != nil {
			return err
		}
		if readErr != nil {
			return nil
		}
	}
}

func (w *walker) rarProblem(member string, err error) {
	switch {
	case errors.Is(err, rardecode.ErrArchiveEncrypted):
		w.problem(member, Encrypted, "rar: the archive's headers are encrypted: member names cannot be read")
	case errors.Is(err, rardecode.ErrDictionaryTooLarge):
		w.problem(member, Unscannable, "rar dictionary too large (limit 64 MiB)")
	case errors.Is(err, rardecode.ErrMultiVolume):
		w.problem(member, Unscannable, "rar: multi-volume archive continues in another file")
	case errors.Is(err, rardecode.ErrNoSig):
		w.problem(member, Unscannable, "rar: not a rar archive")
	default:
		w.problem(member, Unscannable, readDetail(Rar, err))
	}
}
