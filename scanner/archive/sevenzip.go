package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/bodgit/sevenzip"
	"github.com/stangelandcl/ppmd"
	"github.com/ulikunitz/xz/lzma"
)

// errEncrypted7z is what the AES coder (decrypt_7z.go) gives when no
// candidate password is being tried.
var errEncrypted7z = errors.New("encrypted (7zAES)")

// The 7z method ids (7-Zip's DOC/Methods.txt) whose decoders this package
// replaces in sevenzip's process-wide registry, to bound their memory by
// maxDictionary and to bound the cost of decryption. Only this package uses sevenzip.
var (
	method7zLZMA  = []byte{0x03, 0x01, 0x01}
	method7zLZMA2 = []byte{0x21}
	method7zPPMd  = []byte{0x03, 0x04, 0x01}
	method7zAES   = []byte{0x06, 0xf1, 0x07, 0x01}
)

func init() {
	sevenzip.RegisterDecompressor(method7zLZMA, lzmaDecoder)
	sevenzip.RegisterDecompressor(method7zLZMA2, lzma2Decoder)
	sevenzip.RegisterDecompressor(method7zPPMd, ppmdDecoder)
	sevenzip.RegisterDecompressor(method7zAES, aes7zDecoder)
}

// lzmaDecoder is sevenzip's LZMA coder with the dictionary bounded. The
// decoder never allocates more than the unpacked size, so a large
// dictionary on a small member is fine.
func lzmaDecoder(p []byte, size uint64, in []io.ReadCloser) (io.ReadCloser, error) {
	if len(in) != 1 || len(p) != 5 {
		return nil, errors.New("lzma: bad coder properties")
	}
	if dict := int64(binary.LittleEndian.Uint32(p[1:])); dict > maxDictionary && size > maxDictionary {
		return nil, errDictionaryTooLarge
	}
	// The coder properties and the unpacked size make a classic .lzma header.
	hdr := make([]byte, 0, 13)
	hdr = append(hdr, p...)
	hdr = binary.LittleEndian.AppendUint64(hdr, size)
	lr, err := lzma.ReaderConfig{DictCap: maxDictionary}.NewReader(io.MultiReader(bytes.NewReader(hdr), in[0]))
	if err != nil {
		return nil, fmt.Errorf("lzma: %w", err)
	}
	return readCloser{lr, in[0]}, nil
}

// lzma2Decoder is sevenzip's LZMA2 coder with the dictionary bounded.
func lzma2Decoder(p []byte, size uint64, in []io.ReadCloser) (io.ReadCloser, error) {
	if len(in) != 1 || len(p) != 1 || p[0] > 40 {
		return nil, errors.New("lzma2: bad coder properties")
	}
	dict := lzma2Dict(p[0])
	if int64(size) >= 0 && int64(size) < dict { // a window beyond the data is never used
		dict = max(int64(size), lzma.MinDictCap)
	}
	if dict > maxDictionary {
		return nil, errDictionaryTooLarge
	}
	lr, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(in[0])
	if err != nil {
		return nil, fmt.Errorf("lzma2: %w", err)
	}
	return readCloser{lr, in[0]}, nil
}

// ppmdDecoder is sevenzip's PPMd coder with the model memory bounded.
func ppmdDecoder(p []byte, size uint64, in []io.ReadCloser) (io.ReadCloser, error) {
	if len(in) != 1 || len(p) != 5 {
		return nil, errors.New("ppmd: bad coder properties")
	}
	mem := binary.LittleEndian.Uint32(p[1:])
	if mem > maxDictionary {
		return nil, errDictionaryTooLarge
	}
	if size > 1<<40 {
		return nil, errors.New("ppmd: unpacked size out of range")
	}
	pr, err := ppmd.NewH7zReader(in[0], int(p[0]), int(mem), int(size))
	if err != nil {
		return nil, fmt.Errorf("ppmd: %w", err)
	}
	return readCloser{&recoverReader{r: &pr, what: "ppmd"}, in[0]}, nil
}

// recoverReader turns a decoder's panic on corrupt data (ppmd divides by
// zero on some, found by FuzzWalk) into a sticky error.
type recoverReader struct {
	r    io.Reader
	what string
	err  error
}

func (r *recoverReader) Read(p []byte) (n int, err error) {
	if r.err != nil {
		return 0, r.err
	}
	defer func() {
		if recover() != nil {
			r.err = errors.New(r.what + ": corrupt data")
			n, err = 0, r.err
		}
	}()
	return r.r.Read(p)
}

type readCloser struct {
	io.Reader
	io.Closer
}

// sevenZip walks a 7z archive through r directly: the header gives the
// members, each is streamed (a solid block is decoded once, in order).
// With candidate passwords, each gets its own sevenzip.Reader (sevenzip
// takes the password per reader); a candidate that fails is not tried
// again, as 7-Zip encrypts a whole archive with one password.
func (w *walker) sevenZip(r io.ReaderAt, size int64) error {
	c := &counter{}
	ra := countingReaderAt{r, c}
	pw := newCandidates(w.lim.Passwords)
	var s *session7z
	if pw != nil {
		s = newSession7z(w.ctx, pw.list)
		defer s.close()
	}
	uncommon := false // a coder not every reader has: said of every member
	zr, err := openSevenZip(ra, size, "", w.budget.MaxMembers(), &uncommon)
	headers := false // the headers were encrypted and a candidate opened them
	if errors.Is(err, errEncrypted7z) && pw != nil {
		zr, err = w.sevenZipHeaders(ra, size, pw, s)
		headers = err == nil
	}
	if err != nil {
		var pe *passwordError
		var he *sevenZipHeaderError
		switch {
		case errors.As(err, &he):
			w.problem("", he.kind, he.detail)
		case errors.As(err, &pe):
			w.problem("", Unscannable, "7z: "+pe.detail)
		case errors.Is(err, errEncrypted7z):
			w.problem("", Encrypted, "7z: the archive's headers are encrypted: member names cannot be read")
		case w.ctx.Err() != nil:
			return w.ctx.Err()
		default:
			w.problem("", Unscannable, sevenZipDetail(err))
		}
		return nil
	}
	readers := map[int]*sevenzip.Reader{} // by candidate
	for idx, f := range zr.File {
		if err := w.next(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() {
			continue
		}
		m := Member{Name: cleanName(f.Name), Size: int64(f.UncompressedSize), UncommonCoder: uncommon}
		if m.Size < 0 {
			m.Size = -1
		}
		w.checkName(f.Name, m.Name)
		consumed := c.since()
		rc, err := f.Open()
		if err != nil {
			if errors.Is(err, errEncrypted7z) {
				if _, _, err := w.encryptedMember(m, "7zAES", pw, true, consumed, func(i int, _ string) (io.ReadCloser, error) {
					zri := readers[i]
					if zri == nil {
						var err error
						if zri, err = openSevenZip(ra, size, s.token(i), w.budget.MaxMembers(), nil); err != nil {
							return nil, err
						}
						readers[i] = zri
					}
					if len(zri.File) != len(zr.File) {
						return nil, errors.New("7z: headers differ")
					}
					rc, err := zri.File[idx].Open()
					if err != nil {
						return nil, err
					}
					return sevenZipVerify(rc, f), nil
				}); err != nil {
					return err
				}
				continue
			}
			var pe *passwordError
			if errors.As(err, &pe) {
				w.problem(m.Name, Unscannable, fmt.Sprintf("7z: member %s: %s", m.Name, pe.detail))
				continue
			}
			w.problem(m.Name, Unscannable, sevenZipDetail(err))
			continue
		}
		if headers {
			// Opened through the reader of the password that decrypted
			// the headers: 7-Zip encrypts the content with it too.
			m.Encrypted, m.Password = true, true
			_, err = w.member(m, passwordReader{sevenZipVerify(rc, f)}, consumed)
		} else {
			_, err = w.member(m, rc, consumed)
		}
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// errSevenZipPanic is a header sevenzip's parser panics on (a nil
// dereference in readHeader, found by FuzzWalk): the archive is corrupt.
var errSevenZipPanic = errors.New("malformed header")

// openSevenZip is sevenzip.NewReaderWithPassword, once check7zHeader
// (sevenzip_header.go) has checked the header's counts, with its panics on
// malformed headers turned into an error. A header check7zHeader refuses
// is a *sevenZipHeaderError.
func openSevenZip(ra io.ReaderAt, size int64, password string, maxMembers int, uncommon *bool) (zr *sevenzip.Reader, err error) {
	defer func() {
		if recover() != nil {
			zr, err = nil, errSevenZipPanic
		}
	}()
	if err := check7zHeaderCoders(ra, size, password, maxMembers, uncommon); err != nil {
		return nil, err
	}
	return sevenzip.NewReaderWithPassword(ra, size, password)
}

// sevenZipHeaders tries the candidates on an archive whose headers are
// encrypted; sevenzip checks the decrypted headers' CRC. A failure is
// errEncrypted7z as without passwords, or a *passwordError.
func (w *walker) sevenZipHeaders(ra io.ReaderAt, size int64, pw *candidates, s *session7z) (*sevenzip.Reader, error) {
	for _, i := range pw.order() {
		zr, err := openSevenZip(ra, size, s.token(i), w.budget.MaxMembers(), nil)
		if err == nil {
			pw.first = i
			return zr, nil
		}
		var pe *passwordError
		if errors.As(err, &pe) {
			return nil, pe
		}
		var he *sevenZipHeaderError
		if errors.As(err, &he) { // the header decrypted, and refused
			return nil, he
		}
		if err := w.ctx.Err(); err != nil {
			return nil, err
		}
		pw.failed[i] = true
	}
	return nil, errEncrypted7z
}

// sevenZipVerify checks a decrypted member's CRC at its end: sevenzip
// checks only the headers', and decrypting with a wrong password gives
// garbage that a stored (Copy) member passes on without error.
func sevenZipVerify(rc io.ReadCloser, f *sevenzip.File) io.ReadCloser {
	if f.CRC32 == 0 && f.UncompressedSize > 0 { // no CRC recorded
		return rc
	}
	return readCloser{&crcReader{r: rc, want: f.CRC32}, rc}
}

func sevenZipDetail(err error) string {
	switch {
	case errors.Is(err, errDictionaryTooLarge):
		return "7z: " + errDictionaryTooLarge.Error()
	case strings.Contains(err.Error(), "unsupported compression algorithm"):
		return "7z: unsupported compression method"
	}
	return readDetail(SevenZip, err)
}
