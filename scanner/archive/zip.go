package archive

import (
	"archive/zip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// zip flag bits and ids (APPNOTE.TXT 4.4.4, 4.5.2, and WinZip's AE-x spec).
const (
	zipFlagEncrypted       = 0x0001
	zipFlagStrongEncrypted = 0x0040
	zipMethodAES           = 99
	zipExtraAES            = 0x9901
)

// zip walks a zip archive through r directly (random access): the central
// directory gives the members, each is streamed by zip.File.Open.
func (w *walker) zip(r io.ReaderAt, size int64) error {
	c := &counter{}
	zr, err := zip.NewReader(countingReaderAt{r, c}, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked below
		w.problem("", Unscannable, readDetail(Zip, err))
		return nil
	}
	files := zr.File
	w.zipOverlaps(files)
	pw := newCandidates(w.lim.Passwords)
	for _, f := range files {
		if err := w.next(); err != nil {
			return err
		}
		if f.FileInfo().IsDir() || strings.HasSuffix(f.Name, "/") && f.UncompressedSize64 == 0 {
			continue
		}
		m := Member{Name: cleanName(f.Name), Size: int64(f.UncompressedSize64), LocalMismatch: zipLocalDisagrees(r, f)}
		if m.Size < 0 {
			m.Size = -1
		}
		w.checkName(f.Name, m.Name)
		if method, ok := zipEncryption(f); ok {
			cands := pw
			if !zipDecryptable(f) {
				cands = nil
			}
			// Each member may have its own password: a candidate wrong for
			// one is tried again on the next.
			if _, _, err := w.encryptedMember(m, method, cands, false, c.since(), func(_ int, password string) (io.ReadCloser, error) {
				return zipOpenEncrypted(f, password)
			}); err != nil {
				return err
			}
			continue
		}
		rc, err := f.Open()
		if err != nil {
			detail := readDetail(Zip, err)
			if errors.Is(err, zip.ErrAlgorithm) {
				detail = fmt.Sprintf("zip: member %s uses unsupported compression method %d", m.Name, f.Method)
			}
			w.problem(m.Name, Unscannable, detail)
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

// zipEncryption tells whether an entry is encrypted and by which method.
func zipEncryption(f *zip.File) (string, bool) {
	if f.Method == zipMethodAES || f.Flags&zipFlagEncrypted != 0 {
		if bits, ok := zipAESStrength(f.Extra); ok || f.Method == zipMethodAES {
			if bits == 0 {
				return "AES", true
			}
			return fmt.Sprintf("AES-%d", bits), true
		}
		if f.Flags&zipFlagStrongEncrypted != 0 {
			return "strong encryption", true
		}
		return "ZipCrypto", true
	}
	return "", false
}

// zipAESStrength finds the AE-x extra field (id 0x9901: version, "AE",
// strength 1/2/3 for AES-128/192/256, method).
func zipAESStrength(extra []byte) (int, bool) {
	for len(extra) >= 4 {
		id := binary.LittleEndian.Uint16(extra)
		n := int(binary.LittleEndian.Uint16(extra[2:]))
		extra = extra[4:]
		if n > len(extra) {
			return 0, false
		}
		if id == zipExtraAES {
			if n >= 5 {
				switch extra[4] {
				case 1:
					return 128, true
				case 2:
					return 192, true
				case 3:
					return 256, true
				}
			}
			return 0, true
		}
		extra = extra[n:]
	}
	return 0, false
}

// zipOverlaps reports entries whose data overlap another's: several
// central directory entries pointing into the same bytes is the trick of
// overlapping zip bombs, and no archiver writes it.
func (w *walker) zipOverlaps(files []*zip.File) {
	type span struct {
		start, end int64
		name       string
	}
	spans := make([]span, 0, len(files))
	for _, f := range files {
		off, err := f.DataOffset()
		if err != nil {
			continue // Open will fail and say so
		}
		end := off + int64(f.CompressedSize64)
		if int64(f.CompressedSize64) < 0 || end < off {
			end = 1<<63 - 1
		}
		spans = append(spans, span{off, end, cleanName(f.Name)})
	}
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var prev *span
	for i := range spans {
		s := &spans[i]
		if prev != nil && s.start < prev.end && s.end > s.start {
			w.problem(s.name, Unscannable, fmt.Sprintf("zip: member %s overlaps member %s (overlapping entries, a zip bomb trick)", s.name, prev.name))
		}
		if prev == nil || s.end > prev.end {
			prev = s
		}
	}
}
