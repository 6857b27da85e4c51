package archive

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// MaxPasswordTries is how many of Limits.Passwords are tried on one
// archive. Each wrong try costs a key derivation (for 7z, 2^19 SHA-256
// rounds), and the candidates come from the message, that is from the
// sender: the bound keeps a message listing a thousand "passwords" from
// buying a thousand derivations per archive.
const MaxPasswordTries = 8

// probeSize is how much of a member's content a candidate password must
// expand to without error before the member is handed to visit. A member
// that ends within it has also passed its integrity check (CRC, HMAC), so
// a small member is never handed over decrypted with a wrong password;
// beyond it, a wrong password that got past the format's quick check is
// only found at the end, after visit has read the garbage, and is then
// reported (see errWrongPassword).
const probeSize = 256 << 10

// errWrongPassword is what the content of a member opened with a
// candidate password gives when the data proves the candidate wrong: the
// quick checks (ZipCrypto's check byte, AES zip's verifier) pass a wrong
// password now and then, and only the checksum at the end tells. When
// that happens after the probe, visit has already read garbage: the member
// is reported Unscannable with this in the detail, as with any read error,
// and the engines' verdict on that garbage means nothing.
var errWrongPassword = errors.New("wrong password")

var (
	errPasswordCRC = fmt.Errorf("%w (CRC mismatch)", errWrongPassword)
	errPasswordMAC = fmt.Errorf("%w (authentication code mismatch)", errWrongPassword)
)

// passwordError is a failure of a member that no other candidate can
// cure (a method this package does not expand, a key derivation too
// costly): the member is Unscannable rather than Encrypted. Its text says
// what failed and never holds a password.
type passwordError struct{ detail string }

func (e *passwordError) Error() string { return e.detail }

// candidates are the passwords tried on the encrypted members of one
// archive. Passwords are message content: they never go into a Problem,
// an error or a log line.
type candidates struct {
	list []string
	// first is the candidate that last opened a member, tried first on
	// the next one: an archive usually has one password.
	first int
	// failed marks candidates proven wrong, for formats whose archives
	// have one password (7z, rar): they are not tried again.
	failed []bool
}

// newCandidates keeps the first MaxPasswordTries distinct non-empty
// passwords, in order; nil when there are none.
func newCandidates(passwords []string) *candidates {
	var list []string
	for _, p := range passwords {
		if len(list) == MaxPasswordTries {
			break
		}
		if p != "" && !contains(list, p) {
			list = append(list, p)
		}
	}
	if len(list) == 0 {
		return nil
	}
	return &candidates{list: list, failed: make([]bool, len(list))}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// order is the candidates to try, the last one that worked first.
func (c *candidates) order() []int {
	out := make([]int, 0, len(c.list))
	if !c.failed[c.first] {
		out = append(out, c.first)
	}
	for i := range c.list {
		if i != c.first && !c.failed[i] {
			out = append(out, i)
		}
	}
	return out
}

// unlock tries the candidates on one member. open gives the member's
// expanded content decrypted with candidate i; its reads fail (with an
// error wrapping errWrongPassword, or a decoding error) when the data
// shows the candidate wrong. The first probeSize bytes are read here: the
// first candidate that gets through them is the one, and what was read is
// handed on at the front of the returned reader.
//
// When none gets through, the first whose only fault was the checksum at
// the end of a member within the probe (errPasswordCRC, errPasswordMAC)
// is handed on all the same, with mismatch set. Either it is a wrong
// password that passed the format's quick check (1 in 256 for ZipCrypto)
// and what it gives is garbage, which harms nothing to scan; or it is the
// right one and the checksum was made wrong on purpose, and what it gives
// is what unzip and 7-Zip extract with a warning: a payload whose password
// is in the message must not pass for merely encrypted.
//
// It returns a nil reader when no candidate opened the member, a
// *passwordError when trying more is pointless, or ctx's error.
// oncePerArchive marks a failed candidate as not to be tried again.
func (w *walker) unlock(c *candidates, oncePerArchive bool, open func(i int, password string) (io.ReadCloser, error)) (rc io.ReadCloser, mismatch bool, err error) {
	var suspect []byte
	suspectOf := -1
	for _, i := range c.order() {
		if err := w.ctx.Err(); err != nil {
			return nil, false, err
		}
		rc, err := open(i, c.list[i])
		if err == nil {
			buf := make([]byte, probeSize)
			var n int
			n, err = io.ReadFull(rc, buf)
			switch {
			case err == nil:
				c.first = i
				return readCloser{io.MultiReader(bytes.NewReader(buf[:n]), rc), rc}, false, nil
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				c.first = i
				return readCloser{bytes.NewReader(buf[:n]), rc}, false, nil
			case suspectOf < 0 && (errors.Is(err, errPasswordCRC) || errors.Is(err, errPasswordMAC)):
				suspect, suspectOf = buf[:n], i
			}
			rc.Close()
		}
		var pe *passwordError
		if errors.As(err, &pe) {
			return nil, false, pe
		}
		if err := w.ctx.Err(); err != nil {
			return nil, false, err
		}
		if oncePerArchive && suspectOf != i {
			c.failed[i] = true
		}
	}
	if suspectOf >= 0 {
		return io.NopCloser(bytes.NewReader(suspect)), true, nil
	}
	return nil, false, nil
}

// encryptedMember hands an encrypted member to visit: decrypted when a
// candidate opens it (Member.Password, no problem recorded: the member is
// scanned like any other), else an Encrypted problem, with what a
// candidate decrypts it to when only the integrity check stood against it
// (Member.Unverified), nil content otherwise. opened tells whether a candidate
// opened it (c.first is that candidate); readErr and err are as for
// member.
func (w *walker) encryptedMember(m Member, method string, c *candidates, oncePerArchive bool, consumed func() int64,
	open func(i int, password string) (io.ReadCloser, error)) (opened bool, readErr error, err error) {
	if c == nil {
		return false, nil, w.encrypted(m, method)
	}
	rc, mismatch, err := w.unlock(c, oncePerArchive, open)
	var pe *passwordError
	switch {
	case errors.As(err, &pe):
		w.problem(m.Name, Unscannable, fmt.Sprintf("%s: member %s: %s", w.format, m.Name, pe.detail))
		return false, nil, nil
	case err != nil:
		return false, nil, err
	case rc == nil:
		return false, nil, w.encrypted(m, method)
	}
	defer rc.Close()
	if mismatch {
		m.Encrypted, m.Unverified = true, true
		w.problem(m.Name, Encrypted, w.encryptedDetail(m, method)+
			"; a password from the message decrypts it but fails its integrity check, and what it gives was scanned")
		readErr, err = w.member(m, rc, consumed)
		return false, readErr, err
	}
	m.Encrypted, m.Password = true, true
	readErr, err = w.member(m, passwordReader{rc}, consumed)
	return true, readErr, err
}

// passwordReader marks the read errors of a member opened with a
// candidate: past the probe, bad data may as well be a wrong password.
type passwordReader struct{ r io.Reader }

func (p passwordReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF && !errors.Is(err, errWrongPassword) {
		err = fmt.Errorf("wrong password or corrupt data: %w", err)
	}
	return n, err
}

// crcReader checks the CRC-32 of what it reads at EOF and returns
// errPasswordCRC instead of io.EOF when it does not match.
type crcReader struct {
	r    io.Reader
	crc  uint32
	want uint32
	err  error // sticky
}

func (c *crcReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:n])
	if err == io.EOF && c.crc != c.want {
		err = errPasswordCRC
	}
	if err != nil {
		c.err = err
	}
	return n, err
}
