package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// Zip decryption with a candidate password: the traditional PKWARE
// encryption ("ZipCrypto", APPNOTE.TXT 6.1) and WinZip's AES (AE-1/AE-2,
// https://www.winzip.com/en/support/aes-encryption/). Strong encryption
// (APPNOTE 7) is not attempted.

const (
	zipFlagDataDescriptor = 0x0008
	zipCryptoHeaderSize   = 12
	zipAESVerifierSize    = 2
	zipAESMACSize         = 10
	zipAESIterations      = 1000
)

// zipDecryptable tells whether the member's encryption is one this
// package can try passwords on.
func zipDecryptable(f *zip.File) bool {
	if f.Method == zipMethodAES {
		_, ok := parseZipAES(f.Extra)
		return ok
	}
	return f.Flags&zipFlagEncrypted != 0 && f.Flags&zipFlagStrongEncrypted == 0
}

// zipOpenEncrypted opens an encrypted member with password: the content
// expanded, checked at EOF by its CRC (ZipCrypto, AE-1) and, for AES, by
// the authentication code. The quick checks (the check byte, the
// verifier) fail with errWrongPassword.
func zipOpenEncrypted(f *zip.File, password string) (io.ReadCloser, error) {
	raw, err := f.OpenRaw()
	if err != nil {
		return nil, err
	}
	if f.Method == zipMethodAES {
		return zipOpenAES(f, raw, password)
	}
	var hdr [zipCryptoHeaderSize]byte
	if _, err := io.ReadFull(raw, hdr[:]); err != nil {
		return nil, err
	}
	k := newZipCryptoKeys([]byte(password))
	k.decrypt(hdr[:])
	// APPNOTE 6.1.6: the last header byte is the CRC's high byte, or with a
	// data descriptor (the CRC was not known when the header was written)
	// the high byte of the DOS time. Either is accepted: the CRC at the
	// end is the real check.
	if hdr[11] != byte(f.CRC32>>24) && (f.Flags&zipFlagDataDescriptor == 0 || hdr[11] != byte(f.ModifiedTime>>8)) {
		return nil, errWrongPassword
	}
	content, err := zipExpand(f.Method, &zipCryptoReader{r: raw, k: k})
	if err != nil {
		return nil, err
	}
	return io.NopCloser(&crcReader{r: content, want: f.CRC32}), nil
}

// zipExpand expands a decrypted member stored with method.
func zipExpand(method uint16, r io.Reader) (io.Reader, error) {
	switch method {
	case zip.Store:
		return r, nil
	case zip.Deflate:
		return flate.NewReader(r), nil
	}
	return nil, &passwordError{fmt.Sprintf("opened with a password from the message, but uses unsupported compression method %d", method)}
}

// zipCryptoKeys are ZipCrypto's three keys (APPNOTE 6.1.5).
type zipCryptoKeys [3]uint32

func newZipCryptoKeys(password []byte) *zipCryptoKeys {
	k := &zipCryptoKeys{0x12345678, 0x23456789, 0x34567890}
	for _, b := range password {
		k.update(b)
	}
	return k
}

func crc32Byte(crc uint32, b byte) uint32 {
	return crc32.IEEETable[byte(crc)^b] ^ crc>>8
}

func (k *zipCryptoKeys) update(b byte) {
	k[0] = crc32Byte(k[0], b)
	k[1] = (k[1]+k[0]&0xff)*134775813 + 1
	k[2] = crc32Byte(k[2], byte(k[1]>>24))
}

// decrypt decrypts p in place (APPNOTE 6.1.7).
func (k *zipCryptoKeys) decrypt(p []byte) {
	for i, c := range p {
		temp := k[2] | 2
		b := c ^ byte((temp*(temp^1))>>8)
		k.update(b)
		p[i] = b
	}
}

type zipCryptoReader struct {
	r io.Reader
	k *zipCryptoKeys
}

func (z *zipCryptoReader) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	z.k.decrypt(p[:n])
	return n, err
}

// zipAES is the AE-x extra field (id 0x9901): vendor version 1 or 2,
// "AE", strength 1/2/3 for AES-128/192/256, the real compression method.
type zipAES struct {
	version  uint16
	keyLen   int
	saltLen  int
	method   uint16
	strength int
}

func parseZipAES(extra []byte) (zipAES, bool) {
	for len(extra) >= 4 {
		id := binary.LittleEndian.Uint16(extra)
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if n > len(extra) {
			return zipAES{}, false
		}
		if id == zipExtraAES {
			d := extra[:n]
			if n < 7 || string(d[2:4]) != "AE" {
				return zipAES{}, false
			}
			a := zipAES{version: binary.LittleEndian.Uint16(d), method: binary.LittleEndian.Uint16(d[5:])}
			switch d[4] {
			case 1:
				a.keyLen, a.saltLen, a.strength = 16, 8, 128
			case 2:
				a.keyLen, a.saltLen, a.strength = 24, 12, 192
			case 3:
				a.keyLen, a.saltLen, a.strength = 32, 16, 256
			default:
				return zipAES{}, false
			}
			return a, a.version == 1 || a.version == 2
		}
		extra = extra[n:]
	}
	return zipAES{}, false
}

// zipOpenAES: the data is salt, a 2-byte password verifier, the
// ciphertext and a 10-byte HMAC-SHA1 of the ciphertext. PBKDF2-HMAC-SHA1
// (1000 rounds) gives the AES key, the HMAC key and the verifier.
func zipOpenAES(f *zip.File, raw io.Reader, password string) (io.ReadCloser, error) {
	a, _ := parseZipAES(f.Extra)
	overhead := int64(a.saltLen + zipAESVerifierSize + zipAESMACSize)
	size := int64(f.CompressedSize64)
	if size < overhead {
		return nil, io.ErrUnexpectedEOF
	}
	head := make([]byte, a.saltLen+zipAESVerifierSize)
	if _, err := io.ReadFull(raw, head); err != nil {
		return nil, err
	}
	keys, err := pbkdf2.Key(sha1.New, password, head[:a.saltLen], zipAESIterations, 2*a.keyLen+zipAESVerifierSize)
	if err != nil {
		return nil, errWrongPassword
	}
	if !bytes.Equal(keys[2*a.keyLen:], head[a.saltLen:]) {
		return nil, errWrongPassword
	}
	block, err := aes.NewCipher(keys[:a.keyLen])
	if err != nil {
		return nil, err
	}
	d := &zipAESReader{
		r:     io.LimitReader(raw, size-overhead),
		trail: raw,
		ctr:   newWinZipCTR(block),
		mac:   hmac.New(sha1.New, keys[a.keyLen:2*a.keyLen]),
	}
	content, err := zipExpand(a.method, d)
	if err != nil {
		return nil, err
	}
	v := &zipAESVerify{r: content, d: d}
	if a.version == 1 { // AE-2 leaves the CRC out: the MAC is the check
		v.crc = &crcReader{r: content, want: f.CRC32}
		v.r = v.crc
	}
	return io.NopCloser(v), nil
}

// winZipCTR is AES in WinZip's counter mode: the counter is a 128-bit
// little-endian integer starting at 1 (Gladman's fileenc.c), not the
// big-endian increment of cipher.NewCTR.
type winZipCTR struct {
	block   cipher.Block
	counter [aes.BlockSize]byte
	stream  [aes.BlockSize]byte
	used    int
}

func newWinZipCTR(b cipher.Block) *winZipCTR {
	return &winZipCTR{block: b, used: aes.BlockSize}
}

func (c *winZipCTR) xor(p []byte) {
	for i := range p {
		if c.used == aes.BlockSize {
			for j := range c.counter {
				c.counter[j]++
				if c.counter[j] != 0 {
					break
				}
			}
			c.block.Encrypt(c.stream[:], c.counter[:])
			c.used = 0
		}
		p[i] ^= c.stream[c.used]
		c.used++
	}
}

// zipAESReader decrypts the ciphertext and keeps its HMAC.
type zipAESReader struct {
	r     io.Reader // the ciphertext
	trail io.Reader // the authentication code after it
	ctr   *winZipCTR
	mac   hash.Hash
}

func (z *zipAESReader) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	z.mac.Write(p[:n])
	z.ctr.xor(p[:n])
	return n, err
}

// check reads what is left of the ciphertext (a decompressor may stop
// short of it) and compares the authentication code.
func (z *zipAESReader) check() error {
	if _, err := io.Copy(io.Discard, z); err != nil {
		return err
	}
	want := make([]byte, zipAESMACSize)
	if _, err := io.ReadFull(z.trail, want); err != nil {
		return err
	}
	if !hmac.Equal(z.mac.Sum(nil)[:zipAESMACSize], want) {
		return errPasswordMAC
	}
	return nil
}

// zipAESVerify turns the end of an AES member's content into the
// authentication code's (and for AE-1 the CRC's) verdict.
type zipAESVerify struct {
	r   io.Reader
	d   *zipAESReader
	crc *crcReader
	err error // sticky
}

func (v *zipAESVerify) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if err == io.EOF || err == errPasswordCRC {
		// The MAC speaks first: a CRC mismatch with a good MAC is corrupt
		// data, not a wrong password, but the MAC tells which.
		if merr := v.d.check(); merr != nil {
			err = merr
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}
