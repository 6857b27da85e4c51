package archive

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

const rightPW = "Invoice2024"

// wrongPWs are candidates that open nothing.
var wrongPWs = []string{"hunter2", "Invoice2023", "invoice2024", "Rechnung", "12345678", "passw0rd", "Invoice 2024", "INVOICE2024", "letmein"}

// payload is a member that deflate compresses and that holds EICAR.
func payload() []byte {
	return append(bytes.Repeat([]byte("Please pay the attached invoice.\n"), 200), eicar()...)
}

// noise is n bytes that do not compress, so that encrypted data spans
// many AES blocks (past a 256-block counter carry).
func noise(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// checkNoPassword fails when a password shows in a problem or an error.
func checkNoPassword(t *testing.T, problems []Problem, err error, passwords []string) {
	t.Helper()
	var texts []string
	for _, p := range problems {
		texts = append(texts, p.Detail, p.Member)
	}
	if err != nil {
		texts = append(texts, err.Error())
	}
	for _, s := range texts {
		for _, pw := range passwords {
			if pw != "" && strings.Contains(s, pw) {
				t.Errorf("password %q shown in %q", pw, s)
			}
		}
	}
}

type pwFixture struct {
	name   string
	data   []byte
	member string // "" when the headers are encrypted
	want   []byte
	method string // in the Encrypted problem
}

func pwFixtures(t *testing.T) []pwFixture {
	doc := []file{{"doc.exe", payload()}}
	big := []file{{"doc.exe", noise(100 << 10)}}
	pw := "-p" + rightPW
	return []pwFixture{
		{"zip ZipCrypto deflate", tool(t, "x.zip", doc, "zip", "-q", "-P", rightPW, "x.zip", "doc.exe"), "doc.exe", doc[0].data, "ZipCrypto"},
		{"zip ZipCrypto store", tool(t, "x.zip", doc, "zip", "-q", "-0", "-P", rightPW, "x.zip", "doc.exe"), "doc.exe", doc[0].data, "ZipCrypto"},
		{"zip ZipCrypto data descriptor", tool(t, "x.zip", doc, "sh", "-c", "zip -q -P "+rightPW+" - doc.exe > x.zip"), "doc.exe", doc[0].data, "ZipCrypto"},
		{"zip AES-256", tool(t, "x.zip", doc, "7z", "a", "-tzip", pw, "-mem=AES256", "x.zip", "doc.exe"), "doc.exe", doc[0].data, "AES-256"},
		{"zip AES-128", tool(t, "x.zip", doc, "7z", "a", "-tzip", pw, "-mem=AES128", "x.zip", "doc.exe"), "doc.exe", doc[0].data, "AES-128"},
		{"zip AES-192 store big", tool(t, "x.zip", big, "7z", "a", "-tzip", pw, "-mem=AES192", "-mx0", "x.zip", "doc.exe"), "doc.exe", big[0].data, "AES-192"},
		{"zip AES-256 deflate big", tool(t, "x.zip", big, "7z", "a", "-tzip", pw, "-mem=AES256", "x.zip", "doc.exe"), "doc.exe", big[0].data, "AES-256"},
		{"7z", tool(t, "x.7z", doc, "7z", "a", pw, "x.7z", "doc.exe"), "doc.exe", doc[0].data, "7zAES"},
		{"7z copy", tool(t, "x.7z", doc, "7z", "a", pw, "-m0=Copy", "x.7z", "doc.exe"), "doc.exe", doc[0].data, "7zAES"},
		{"7z encrypted headers", tool(t, "x.7z", doc, "7z", "a", pw, "-mhe=on", "x.7z", "doc.exe"), "", doc[0].data, "headers are encrypted"},
		{"rar 4", rar4Encrypted("doc.exe", doc[0].data, rightPW), "doc.exe", doc[0].data, "rar: member doc.exe is encrypted"},
	}
}

func TestPasswords(t *testing.T) {
	for _, fx := range pwFixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			ninth := append(append([]string(nil), wrongPWs[:8]...), rightPW)
			eighth := append(append([]string(nil), wrongPWs[:7]...), rightPW)
			tests := []struct {
				name      string
				passwords []string
				opened    bool
			}{
				{"right among wrong", []string{"hunter2", "", rightPW, "letmein"}, true},
				{"right first", []string{rightPW}, true},
				{"only wrong", wrongPWs[:3], false},
				{"none", nil, false},
				{"right is the eighth", eighth, true},
				{"right is the ninth, past MaxPasswordTries", ninth, false},
				{"repeats and empties do not count", append([]string{"", "hunter2", "hunter2", "", "hunter2"}, eighth...), true},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, problems, err := walk(t, fx.data, Limits{Passwords: tt.passwords, MaxMemberSize: 1 << 20, MaxRatio: 100}, NewBudget(8<<20))
					checkNoPassword(t, problems, err, append(tt.passwords, wrongPWs...))
					if err != nil {
						t.Fatal(err)
					}
					if !tt.opened {
						if !hasProblem(problems, fx.member, Encrypted, fx.method) {
							t.Errorf("problems %+v, want Encrypted for %q with %q", problems, fx.member, fx.method)
						}
						// A format with no quick check of the password (7z,
						// rar) finds a wrong one only by the checksum at the
						// end: what it decrypts to is handed on, Unverified.
						for _, s := range got {
							if !s.m.Encrypted || s.m.Password || (s.content != nil) != s.m.Unverified || bytes.Equal(s.content, payload()) {
								t.Errorf("visited %+v (%d bytes), want encrypted, not opened, content only when unverified", s.m, len(s.content))
							}
						}
						return
					}
					if len(problems) != 0 {
						t.Errorf("problems %+v, want none", problems)
					}
					if len(got) != 1 {
						t.Fatalf("visited %d members, want 1", len(got))
					}
					s := got[0]
					if s.m.Name != "doc.exe" || !s.m.Encrypted || !s.m.Password || s.err != nil || !bytes.Equal(s.content, fx.want) {
						t.Errorf("visited %+v (err %v), %d bytes; want doc.exe decrypted, %d bytes", s.m, s.err, len(s.content), len(fx.want))
					}
				})
			}
		})
	}
}

// TestPasswordPerMember: zip members may each have their own password;
// the one that worked is tried first on the next.
func TestPasswordPerMember(t *testing.T) {
	dir := []file{{"a.txt", []byte("first member")}, {"b.txt", payload()}, {"c.txt", []byte("plain")}}
	data := tool(t, "x.zip", dir, "sh", "-c",
		"zip -q -P one x.zip a.txt && zip -q -P "+rightPW+" x.zip b.txt && zip -q x.zip c.txt")
	got, problems, err := walk(t, data, Limits{Passwords: []string{"nope", rightPW, "one"}}, nil)
	if err != nil || len(problems) != 0 || len(got) != 3 {
		t.Fatalf("got %d members, problems %+v, err %v", len(got), problems, err)
	}
	for i, s := range got {
		enc := i < 2
		if s.m.Name != dir[i].name || s.m.Encrypted != enc || s.m.Password != enc || !bytes.Equal(s.content, dir[i].data) {
			t.Errorf("member %d: %+v %q", i, s.m, s.content)
		}
	}
}

// zipCryptoImpostor finds a wrong password whose ZipCrypto header check
// byte matches the first member's: 1 in 256 does.
func zipCryptoImpostor(t *testing.T, data []byte) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	f := zr.File[0]
	raw, _ := f.OpenRaw()
	hdr := make([]byte, zipCryptoHeaderSize)
	io.ReadFull(raw, hdr)
	for i := 0; i < 100000; i++ {
		pw := fmt.Sprintf("impostor%d", i)
		h := append([]byte(nil), hdr...)
		newZipCryptoKeys([]byte(pw)).decrypt(h)
		if h[11] == byte(f.CRC32>>24) {
			return pw
		}
	}
	t.Fatal("no impostor found")
	return ""
}

// TestZipCryptoImpostor: a wrong password that passes the check byte is
// caught by the CRC. Within the probe it is just a wrong candidate; past
// it, visit has read garbage and the member is Unscannable.
func TestZipCryptoImpostor(t *testing.T) {
	small := tool(t, "x.zip", []file{{"doc.exe", payload()}}, "zip", "-q", "-0", "-P", rightPW, "x.zip", "doc.exe")
	imp := zipCryptoImpostor(t, small)
	got, problems, err := walk(t, small, Limits{Passwords: []string{imp, rightPW}}, nil)
	if err != nil || len(problems) != 0 || len(got) != 1 || !got[0].m.Password || !bytes.Equal(got[0].content, payload()) {
		t.Errorf("small: got %+v, problems %+v, err %v", got, problems, err)
	}

	bigData := noise(probeSize + 4096)
	big := tool(t, "x.zip", []file{{"doc.exe", bigData}}, "zip", "-q", "-0", "-P", rightPW, "x.zip", "doc.exe")
	imp = zipCryptoImpostor(t, big)
	got, problems, err = walk(t, big, Limits{Passwords: []string{imp, rightPW}}, nil)
	checkNoPassword(t, problems, err, []string{imp, rightPW})
	if err != nil || !hasProblem(problems, "doc.exe", Unscannable, "wrong password (CRC mismatch)") {
		t.Errorf("big: problems %+v, err %v", problems, err)
	}
	if len(got) != 1 || !got[0].m.Password || got[0].err == nil {
		t.Errorf("big: visited %+v, want the member with a read error at its end", got)
	}
	// With the right one first, it is read whole.
	got, problems, err = walk(t, big, Limits{Passwords: []string{rightPW, imp}}, nil)
	if err != nil || len(problems) != 0 || len(got) != 1 || !bytes.Equal(got[0].content, bigData) {
		t.Errorf("big, right first: problems %+v, err %v", problems, err)
	}
}

// TestChecksumMadeWrong: the right password from the message and a
// checksum made wrong on purpose, which unzip and 7-Zip extract with a
// warning. The member is reported Encrypted, as when the password is
// wrong, but what the password decrypts it to is handed on (Unverified),
// so that its payload is scanned: before, such a member was merely
// "encrypted", delivered tagged by default.
func TestChecksumMadeWrong(t *testing.T) {
	crcOff := func(data []byte) []byte {
		data = bytes.Clone(data)
		for i := 0; i+20 < len(data); i++ {
			switch {
			case bytes.HasPrefix(data[i:], []byte("PK\x03\x04")):
				data[i+14] ^= 0xff // CRC-32's low byte: ZipCrypto's check byte is its high byte
			case bytes.HasPrefix(data[i:], []byte("PK\x01\x02")):
				data[i+16] ^= 0xff
			}
		}
		return data
	}
	macOff := func(data []byte) []byte {
		data = bytes.Clone(data)
		zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		off, _ := zr.File[0].DataOffset()
		data[off+16+2+int64(len(payload()))] ^= 1 // the authentication code after the data
		return data
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"ZipCrypto, deflated", crcOff(tool(t, "x.zip", []file{{"doc.exe", payload()}}, "zip", "-q", "-P", rightPW, "x.zip", "doc.exe"))},
		{"ZipCrypto, stored", crcOff(tool(t, "x.zip", []file{{"doc.exe", payload()}}, "zip", "-q", "-0", "-P", rightPW, "x.zip", "doc.exe"))},
		{"AES-256", macOff(tool(t, "x.zip", []file{{"doc.exe", payload()}}, "7z", "a", "-tzip", "-p"+rightPW, "-mem=AES256", "-mx0", "x.zip", "doc.exe"))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, problems, err := walk(t, tt.data, Limits{Passwords: []string{"hunter2", rightPW}}, nil)
			checkNoPassword(t, problems, err, []string{"hunter2", rightPW})
			if err != nil || !hasProblem(problems, "doc.exe", Encrypted, "fails its integrity check") {
				t.Errorf("problems %+v, err %v", problems, err)
			}
			if len(got) != 1 || !got[0].m.Unverified || got[0].m.Password || !bytes.Equal(got[0].content, payload()) {
				t.Errorf("visited %d members, first %+v; want doc.exe unverified with its payload", len(got), got)
			}
		})
	}
}

// TestWinZipCounter: WinZip's CTR counter is little-endian from 1; check
// the first blocks and a carry.
func TestWinZipCounter(t *testing.T) {
	block, _ := aes.NewCipher(make([]byte, 16))
	c := newWinZipCTR(block)
	p := make([]byte, 257*aes.BlockSize)
	c.xor(p)
	want := func(n int) []byte {
		var ctr, out [16]byte
		binary.LittleEndian.PutUint64(ctr[:], uint64(n))
		block.Encrypt(out[:], ctr[:])
		return out[:]
	}
	for _, n := range []int{1, 2, 255, 256, 257} {
		if got := p[(n-1)*16 : n*16]; !bytes.Equal(got, want(n)) {
			t.Errorf("block %d: % x, want % x", n, got, want(n))
		}
	}
}

// TestZipAESTampered: a flipped ciphertext byte fails the authentication
// code. Within the probe the candidate is just wrong (Encrypted); past it,
// visit has read the data and the member is Unscannable.
func TestZipAESTampered(t *testing.T) {
	for _, tt := range []struct {
		size int
		kind ProblemKind
		text string
	}{
		{4096, Encrypted, "AES-256"},
		{probeSize + 4096, Unscannable, "wrong password (authentication code mismatch)"},
	} {
		data := tool(t, "x.zip", []file{{"doc.exe", noise(tt.size)}}, "7z", "a", "-tzip", "-p"+rightPW, "-mem=AES256", "-mx0", "x.zip", "doc.exe")
		zr, _ := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		off, _ := zr.File[0].DataOffset()
		data[off+16+2+int64(tt.size)-10] ^= 1
		_, problems, err := walk(t, data, Limits{Passwords: []string{rightPW}}, nil)
		checkNoPassword(t, problems, err, []string{rightPW})
		if err != nil || !hasProblem(problems, "doc.exe", tt.kind, tt.text) {
			t.Errorf("%d bytes: problems %+v, err %v", tt.size, problems, err)
		}
	}
}

// Test7zKeyDerivationBound: a round count past max7zCycles is refused
// before any work, as Unscannable.
func Test7zKeyDerivationBound(t *testing.T) {
	s := newSession7z(context.Background(), []string{rightPW})
	defer s.close()
	if _, err := s.key(0, max7zCycles+1, nil); err != errKDFTooCostly {
		t.Errorf("cycles %d: err %v", max7zCycles+1, err)
	}
	if _, err := s.key(0, 62, nil); err != errKDFTooCostly {
		t.Errorf("cycles 62: err %v", err)
	}
	start := time.Now()
	k1, err := s.key(0, 19, []byte("salt"))
	d := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one 7z key derivation (2^19 rounds): %v", d)
	start = time.Now()
	k2, _ := s.key(0, 19, []byte("salt"))
	if !bytes.Equal(k1, k2) || time.Since(start) > d/10 {
		t.Errorf("second derivation not cached")
	}
	// The archive's total is bounded too.
	for i := 0; ; i++ {
		_, err := s.key(0, 19, []byte{byte(i)})
		if err == errKDFTooCostly {
			if i < 2*MaxPasswordTries-1 {
				t.Errorf("refused after %d derivations", i)
			}
			break
		}
		if i > 2*MaxPasswordTries {
			t.Fatal("no bound on derivations")
		}
	}

	// In an archive: 7-Zip's AES properties with the cycles set to 30.
	data := tool(t, "x.7z", []file{{"doc.exe", payload()}}, "7z", "a", "-p"+rightPW, "-mhc=off", "x.7z", "doc.exe")
	at := bytes.Index(data, []byte{0x24, 0x06, 0xf1, 0x07, 0x01})
	if at < 0 || data[at+6]&0x3f != 19 {
		t.Fatalf("7zAES coder not found in the plain header")
	}
	data[at+6] = data[at+6]&0xc0 | 30
	// Redo the CRCs: next header's, in the start header, and the start
	// header's own (7-Zip's DOC/7zFormat.txt).
	off := binary.LittleEndian.Uint64(data[12:])
	n := binary.LittleEndian.Uint64(data[20:])
	binary.LittleEndian.PutUint32(data[28:], crc32.ChecksumIEEE(data[32+off:32+off+n]))
	binary.LittleEndian.PutUint32(data[8:], crc32.ChecksumIEEE(data[12:32]))
	start = time.Now()
	got, problems, err := walk(t, data, Limits{Passwords: []string{rightPW}}, nil)
	if err != nil || !hasProblem(problems, "doc.exe", Unscannable, "7z key derivation too costly") || time.Since(start) > time.Second {
		t.Errorf("cycles 30: problems %+v, err %v, %v", problems, err, time.Since(start))
	}
	if len(got) != 0 {
		t.Errorf("visited %+v", got)
	}
	_, problems, _ = walk(t, data, Limits{}, nil)
	if !hasProblem(problems, "doc.exe", Encrypted, "7zAES") {
		t.Errorf("cycles 30, no password: problems %+v", problems)
	}
}

// Test7zWrongPasswordTiming measures what a wrong candidate costs on a
// 7z archive: one key derivation, then LZMA fails on the garbage.
func Test7zWrongPasswordTiming(t *testing.T) {
	data := tool(t, "x.7z", []file{{"doc.exe", payload()}}, "7z", "a", "-p"+rightPW, "x.7z", "doc.exe")
	for _, n := range []int{1, 8} {
		start := time.Now()
		_, problems, err := walk(t, data, Limits{Passwords: wrongPWs[:n]}, nil)
		if err != nil || !hasProblem(problems, "doc.exe", Encrypted, "7zAES") {
			t.Fatalf("problems %+v, err %v", problems, err)
		}
		t.Logf("7z, %d wrong password(s): %v", n, time.Since(start))
	}
}

// rar4Encrypted builds a RAR 2.9/4 archive holding one stored member
// encrypted with password: AES-128-CBC, key and IV from 2^18 SHA-1 rounds
// over the UTF-16LE password, the salt and a 3-byte counter (unrar's
// crypt3.cpp, written here from that description).
func rar4Encrypted(name string, data []byte, password string) []byte {
	salt := []byte("saltsalt")
	var raw []byte
	for _, c := range utf16.Encode([]rune(password)) {
		raw = binary.LittleEndian.AppendUint16(raw, c)
	}
	raw = append(raw, salt...)
	const rounds = 0x40000
	h := sha1.New()
	iv := make([]byte, 16)
	for i := 0; i < rounds; i++ {
		h.Write(raw)
		h.Write([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		if i%(rounds/16) == 0 {
			iv[i/(rounds/16)] = h.Sum(nil)[19]
		}
	}
	d := h.Sum(nil)
	key := make([]byte, 16)
	for i := 0; i < 4; i++ { // the digest's words, little-endian
		binary.LittleEndian.PutUint32(key[4*i:], binary.BigEndian.Uint32(d[4*i:]))
	}
	padded := append(append([]byte(nil), data...), make([]byte, (16-len(data)%16)%16)...)
	block, _ := aes.NewCipher(key)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(padded, padded)

	hdr := func(typ byte, flags uint16, body, payload []byte) []byte {
		b := []byte{0, 0, typ}
		b = binary.LittleEndian.AppendUint16(b, flags)
		b = binary.LittleEndian.AppendUint16(b, uint16(7+len(body)))
		b = append(b, body...)
		binary.LittleEndian.PutUint16(b, uint16(crc32.ChecksumIEEE(b[2:])))
		return append(b, payload...)
	}
	out := []byte("Rar!\x1a\x07\x00")
	out = append(out, hdr(0x73, 0, make([]byte, 6), nil)...)
	var fh []byte
	fh = binary.LittleEndian.AppendUint32(fh, uint32(len(padded)))
	fh = binary.LittleEndian.AppendUint32(fh, uint32(len(data)))
	fh = append(fh, 3)
	fh = binary.LittleEndian.AppendUint32(fh, crc32.ChecksumIEEE(data))
	fh = binary.LittleEndian.AppendUint32(fh, 0x5a000000)
	fh = append(fh, 29, 0x30) // UNP_VER 2.9 (AES), stored
	fh = binary.LittleEndian.AppendUint16(fh, uint16(len(name)))
	fh = binary.LittleEndian.AppendUint32(fh, 0o100644<<16)
	fh = append(fh, name...)
	fh = append(fh, salt...)
	out = append(out, hdr(0x74, 0x8000|0x0004|0x0400, fh, padded)...)
	return append(out, hdr(0x7b, 0x4000, nil, nil)...)
}
