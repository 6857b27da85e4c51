package archive

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf16"
)

// 7z's AES coder (7zAES: AES-256-CBC, the key SHA-256 of 2^cycles rounds
// of salt, UTF-16LE password and a round counter; 7-Zip's
// CPP/7zip/Crypto/7zAes.cpp) is this package's own, registered in
// sevenzip.go in place of the library's: the library would derive a key
// for any round count the archive sets, and it caches keys with their
// passwords process-wide.
//
// sevenzip hands a decoder the password given to NewReaderWithPassword,
// with no way to tell which walk it belongs to. What this package gives
// it is a token naming a session, one per walk of a 7z archive, which
// holds the candidates, the keys derived for them and the ctx; a decoder
// given no token (the reader without a password) refuses with
// errEncrypted7z, as before passwords were tried.

const (
	// max7zCycles bounds the rounds of one key derivation at 2^22: 7-Zip
	// writes 19 (about 0.1 s here), and the archive, that is the sender,
	// sets it.
	max7zCycles = 22
	// max7zRounds bounds the key derivation rounds of one archive: every
	// candidate at 7-Zip's standard 2^19, twice.
	max7zRounds = 2 * MaxPasswordTries << 19
	// aes7zRawKey is the round count meaning "no hashing".
	aes7zRawKey = 0x3f
)

var errKDFTooCostly = &passwordError{"7z key derivation too costly"}

const sessionPrefix = "\x00avstation-7z "

var (
	sessionsMu sync.Mutex
	sessions   = map[uint64]*session7z{}
	sessionSeq atomic.Uint64
)

// session7z is the password state of one 7z walk.
type session7z struct {
	id        uint64
	ctx       context.Context
	passwords []string

	mu     sync.Mutex
	keys   map[keyID][]byte
	rounds int64
}

type keyID struct {
	candidate int
	cycles    int
	salt      string
}

func newSession7z(ctx context.Context, passwords []string) *session7z {
	s := &session7z{id: sessionSeq.Add(1), ctx: ctx, passwords: passwords, keys: map[keyID][]byte{}}
	sessionsMu.Lock()
	sessions[s.id] = s
	sessionsMu.Unlock()
	return s
}

// close forgets the session: its keys and passwords go with it.
func (s *session7z) close() {
	sessionsMu.Lock()
	delete(sessions, s.id)
	sessionsMu.Unlock()
}

// token is what stands for candidate i in sevenzip's password argument.
func (s *session7z) token(i int) string {
	return sessionPrefix + strconv.FormatUint(s.id, 10) + " " + strconv.Itoa(i)
}

// lookupToken finds the session and candidate of a token.
func lookupToken(t string) (*session7z, int, bool) {
	rest, ok := strings.CutPrefix(t, sessionPrefix)
	if !ok {
		return nil, 0, false
	}
	ids, is, ok := strings.Cut(rest, " ")
	if !ok {
		return nil, 0, false
	}
	id, err1 := strconv.ParseUint(ids, 10, 64)
	i, err2 := strconv.Atoi(is)
	if err1 != nil || err2 != nil {
		return nil, 0, false
	}
	sessionsMu.Lock()
	s := sessions[id]
	sessionsMu.Unlock()
	if s == nil || i < 0 || i >= len(s.passwords) {
		return nil, 0, false
	}
	return s, i, true
}

// key derives (or finds) the key of candidate i for salt and cycles.
func (s *session7z) key(i, cycles int, salt []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := keyID{i, cycles, string(salt)}
	if k, ok := s.keys[id]; ok {
		return k, nil
	}
	u := utf16.Encode([]rune(s.passwords[i]))
	buf := make([]byte, 0, len(salt)+2*len(u)+8)
	buf = append(buf, salt...)
	for _, c := range u {
		buf = binary.LittleEndian.AppendUint16(buf, c)
	}
	key := make([]byte, 32)
	if cycles == aes7zRawKey {
		copy(key, buf)
	} else {
		if cycles > max7zCycles || s.rounds+1<<cycles > max7zRounds {
			return nil, errKDFTooCostly
		}
		s.rounds += 1 << cycles
		h := sha256.New()
		buf = append(buf, make([]byte, 8)...)
		ctr := buf[len(buf)-8:]
		for r := uint64(0); r < 1<<cycles; r++ {
			if r&0xffff == 0 && s.ctx.Err() != nil {
				return nil, s.ctx.Err()
			}
			binary.LittleEndian.PutUint64(ctr, r)
			h.Write(buf)
		}
		key = h.Sum(key[:0])
	}
	s.keys[id] = key
	return key, nil
}

// aes7zReader decrypts a 7zAES stream once Password has set its key.
type aes7zReader struct {
	props []byte
	in    io.ReadCloser
	cbc   cipher.BlockMode
	buf   []byte
	out   []byte // decrypted, not yet read
	err   error
}

func aes7zDecoder(props []byte, _ uint64, in []io.ReadCloser) (io.ReadCloser, error) {
	if len(in) != 1 {
		return nil, errors.New("7zAES: need one input")
	}
	return &aes7zReader{props: props, in: in[0]}, nil
}

// Password is sevenzip's CryptoReadCloser hook; p is a session token.
func (a *aes7zReader) Password(p string) error {
	s, i, ok := lookupToken(p)
	if !ok {
		return errEncrypted7z
	}
	// Properties: first byte cycles (low 6 bits) with the high bits of
	// the salt and IV sizes, second byte their low bits (7zAes.cpp).
	pr := a.props
	if len(pr) < 2 || pr[0]&0xc0 == 0 {
		return errors.New("7zAES: bad properties")
	}
	saltLen := int(pr[0]>>7&1) + int(pr[1]>>4)
	ivLen := int(pr[0]>>6&1) + int(pr[1]&0x0f)
	if len(pr) != 2+saltLen+ivLen {
		return errors.New("7zAES: bad properties")
	}
	key, err := s.key(i, int(pr[0]&0x3f), pr[2:2+saltLen])
	if err != nil {
		return err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return err
	}
	iv := make([]byte, aes.BlockSize)
	copy(iv, pr[2+saltLen:])
	a.cbc = cipher.NewCBCDecrypter(block, iv)
	return nil
}

func (a *aes7zReader) Read(p []byte) (int, error) {
	if a.cbc == nil {
		return 0, errEncrypted7z
	}
	if len(a.out) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		if a.buf == nil {
			a.buf = make([]byte, 32<<10)
		}
		n, err := io.ReadFull(a.in, a.buf)
		n -= n % aes.BlockSize
		a.cbc.CryptBlocks(a.buf[:n], a.buf[:n])
		a.out = a.buf[:n]
		switch err {
		case nil:
		case io.ErrUnexpectedEOF:
			a.err = io.EOF // the coder's output size, set by sevenzip, ends the stream
		default:
			a.err = err
		}
		if n == 0 {
			return 0, a.err
		}
	}
	n := copy(p, a.out)
	a.out = a.out[n:]
	return n, nil
}

func (a *aes7zReader) Close() error { return a.in.Close() }
