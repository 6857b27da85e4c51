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

// errEncrypted7z is what the AES coder gives here: the station has no
// password, and deriving a key from none would cost up to 2^63 SHA-256
// rounds (the archive sets the count).
var errEncrypted7z = errors.New("encrypted (7zAES)")

// The 7z method ids (7-Zip's DOC/Methods.txt) whose decoders this package
// replaces in sevenzip's process-wide registry, to bound their memory by
// maxDictionary and to refuse decryption. Only this package uses sevenzip.
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
	sevenzip.RegisterDecompressor(method7zAES, func([]byte, uint64, []io.ReadCloser) (io.ReadCloser, error) {
		return nil, errEncrypted7z
	})
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
	return readCloser{&pr, in[0]}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// sevenZip walks a 7z archive through r directly: the header gives the
// members, each is streamed (a solid block is decoded once, in order).
func (w *walker) sevenZip(r io.ReaderAt, size int64) error {
	c := &counter{}
	zr, err := sevenzip.NewReader(countingReaderAt{r, c}, size)
	if err != nil {
		if errors.Is(err, errEncrypted7z) {
			w.problem("", Encrypted, "7z: the archive's headers are encrypted: member names cannot be read")
		} else {
			w.problem("", Unscannable, sevenZipDetail(err))
		}
		return nil
	}
	for _, f := range zr.File {
		if err := w.next(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() {
			continue
		}
		m := Member{Name: cleanName(f.Name), Size: int64(f.UncompressedSize)}
		if m.Size < 0 {
			m.Size = -1
		}
		w.checkName(f.Name, m.Name)
		rc, err := f.Open()
		if err != nil {
			if errors.Is(err, errEncrypted7z) {
				if err := w.encrypted(m, "7zAES"); err != nil {
					return err
				}
				continue
			}
			w.problem(m.Name, Unscannable, sevenZipDetail(err))
			continue
		}
		_, err = w.member(m, rc, c.since())
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
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
