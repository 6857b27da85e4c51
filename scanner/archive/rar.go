package archive

import (
	"errors"
	"io"

	"github.com/nwaples/rardecode/v2"
)

// rar walks a RAR 1.5-4.x or 5 archive in one pass. rardecode's reader
// cannot go on after an error of Next, so the first one ends the walk.
//
// rardecode takes one password per reader. With candidate passwords, the
// first encrypted member (or the encrypted headers) is tried with a new
// reader per candidate, brought to the same entry; the one that opens it
// carries on the walk, so the rest of the archive is read with that
// password, and a candidate that fails is not tried again: RAR encrypts
// an archive with one password.
func (w *walker) rar(r io.ReaderAt, size int64) error {
	c := &counter{}
	open := func(password *string) (*rardecode.Reader, error) {
		opts := []rardecode.Option{rardecode.MaxDictionarySize(maxDictionary)}
		if password != nil {
			opts = append(opts, rardecode.Password(*password))
		}
		return rardecode.NewReader(countingReader{io.NewSectionReader(r, 0, size), c}, opts...)
	}
	pw := newCandidates(w.lim.Passwords)
	withPassword := false // rr was opened with a candidate
	rr, err := open(nil)
	var h *rardecode.FileHeader
	if err == nil {
		h, err = rr.Next()
	}
	if errors.Is(err, rardecode.ErrArchiveEncrypted) && pw != nil {
		for _, i := range pw.order() {
			rri, err1 := open(&pw.list[i])
			if err1 == nil {
				h, err1 = rri.Next()
			}
			if err1 == nil || err1 == io.EOF {
				rr, err, withPassword, pw.first = rri, err1, true, i
				break
			}
			pw.failed[i] = true
		}
	}
	for entry := 0; ; entry++ {
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
			h, err = rr.Next()
			continue
		}
		m := Member{Name: cleanName(h.Name), Size: h.UnPackedSize}
		if h.UnKnownSize {
			m.Size = -1
		}
		w.checkName(h.Name, m.Name)
		consumed := c.since()
		var readErr error
		switch {
		case h.Encrypted && withPassword:
			m.Encrypted, m.Password = true, true
			readErr, err = w.member(m, passwordReader{rarChecked{rr}}, consumed)
		case h.Encrypted:
			tried := map[int]*rardecode.Reader{}
			var opened bool
			opened, readErr, err = w.encryptedMember(m, "", pw, true, consumed, func(i int, password string) (io.ReadCloser, error) {
				rri, err := open(&password)
				if err != nil {
					return nil, err
				}
				for n := 0; n <= entry; n++ { // to this entry, skipping the others' data
					if _, err := rri.Next(); err != nil {
						return nil, err
					}
				}
				tried[i] = rri
				return io.NopCloser(rarChecked{rri}), nil
			})
			if opened {
				rr, withPassword = tried[pw.first], true
			}
		default:
			readErr, err = w.member(m, rr, consumed)
		}
		if err != nil {
			return err
		}
		if readErr != nil {
			return nil
		}
		h, err = rr.Next()
	}
}

// rarChecked names rardecode's verdicts on a member read with a
// candidate password: RAR 4 has no password check, and a wrong password
// shows as a bad checksum at the end; RAR 5 checks it up front.
type rarChecked struct{ r io.Reader }

func (c rarChecked) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	switch {
	case errors.Is(err, rardecode.ErrBadFileChecksum):
		err = errPasswordCRC
	case errors.Is(err, rardecode.ErrBadPassword):
		err = errWrongPassword
	}
	return n, err
}

func (w *walker) rarProblem(member string, err error) {
	switch {
	case errors.Is(err, rardecode.ErrArchiveEncrypted):
		w.problem(member, Encrypted, "rar: the archive's headers are encrypted: member names cannot be read")
	case errors.Is(err, rardecode.ErrBadPassword):
		w.problem(member, Encrypted, "rar: encrypted with a password that is not one from the message")
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
