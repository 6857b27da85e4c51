package archive

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"
)

// Where archives can start, besides offset 0. Mail clients and archivers
// open more than what starts with a magic number: unzip finds a zip by the
// end of central directory record at its end, whatever precedes it (a
// self-extracting stub, one junk byte); 7-Zip and unrar find their
// signatures after an SFX stub. An archive the recipient can open but the
// scanner does not see is a way around encryption checks and in-archive
// filters, so Locate looks where they look, within bounds.
const (
	// zipTail is how far from the end the EOCD record is searched: what
	// archive/zip, which walks the archive, searches (a 64 KiB comment
	// plus the 22-byte record fit).
	zipTail = 65 * 1024
	// sfxSearch bounds the search for a 7z or RAR signature after a
	// prefix: unrar searches MAXSFXSIZE (2 MiB in current unrar), and
	// 7-Zip SFX stubs are well under 1 MiB. Twice unrar's limit costs a
	// memchr-speed scan of 4 MiB of a part that is no archive.
	sfxSearch = 4 << 20
	// sfxChunk is what the signature search reads at a time.
	sfxChunk = 64 << 10
)

var (
	magicZip64Locator = []byte("PK\x06\x07")
	magicRar          = []byte("Rar!\x1a\x07") // RAR 4 and 5 differ in the bytes after it
)

// Location is an archive found in a part's content: Walk reads Size bytes
// from Offset.
type Location struct {
	Format Format
	// Offset is where the archive's first byte is. A zip found by its
	// end record is walked from 0 with the whole content, because
	// archive/zip works out the prefix itself and some SFX writers
	// (zip -A) make the central directory's offsets count from the start
	// of the file.
	Offset int64
	Size   int64
	// Prefixed is an archive not found by its magic at offset 0: a
	// self-extracting executable or an archive with data prepended.
	Prefixed bool
}

// Locate finds the archive in the size bytes of r, as the archivers a
// recipient uses would: first by magic at offset 0 (Detect, with name as
// its tiebreak), then a zip by its end of central directory record in the
// last zipTail bytes, then the first 7z or RAR signature in the first
// sfxSearch bytes whose header checks out (the 7z start header's CRC, the
// RAR main header's CRC). ok is false when there is none.
//
// A zip end record is taken only when it is consistent: on disk 0, its
// entry counts equal, at least one entry, and the central directory it
// claims inside the file before it (or a zip64 locator in front of it).
// Whether the directory is really there is Walk's to find: a record that
// claims one that is not is an archive whose structure does not add up,
// and Walk reports it Unscannable. Random bytes meet these conditions
// with odds far below one in 2^64; signatures with a bad header CRC
// (an archiver's own code, which holds them as constants) are passed
// over, as 7-Zip and libarchive do.
//
// Locate reads at most HeadSize bytes, the last zipTail bytes and the
// first sfxSearch bytes; it never reads past size.
func Locate(r io.ReaderAt, size int64, name string) (Location, bool) {
	if size <= 0 {
		return Location{}, false
	}
	head := make([]byte, min(size, HeadSize))
	n, _ := r.ReadAt(head, 0)
	if f, ok := Detect(head[:n], name); ok {
		return Location{Format: f, Size: size}, true
	}
	if zipEndRecord(r, size) {
		return Location{Format: Zip, Size: size, Prefixed: true}, true
	}
	if f, off, ok := findSignature(r, size); ok {
		return Location{Format: f, Offset: off, Size: size - off, Prefixed: true}, true
	}
	return Location{}, false
}

// tailBufs hold the buffers of zipEndRecord and findSignature: Locate runs
// on every part and member, and their 64 KiB each were a fifth of a
// scan's allocations.
var tailBufs = sync.Pool{New: func() any {
	b := make([]byte, max(zipTail, sfxChunk))
	return &b
}}

// zipEndRecord reports whether the last zipTail bytes hold an end of
// central directory record that archive/zip would take (the last one
// whose comment fits, APPNOTE.TXT 4.3.16) and that is consistent.
func zipEndRecord(r io.ReaderAt, size int64) bool {
	const eocdLen = 22
	n := min(size, zipTail)
	bp := tailBufs.Get().(*[]byte)
	defer tailBufs.Put(bp)
	buf := (*bp)[:n]
	if m, err := r.ReadAt(buf, size-n); int64(m) < n && err != nil {
		return false
	}
	if len(buf) < eocdLen {
		return false
	}
	// archive/zip takes the last record or none.
	p := lastIndex(buf[:len(buf)-eocdLen+len(magicZipEmpty)], magicZipEmpty)
	if p < 0 || int(binary.LittleEndian.Uint16(buf[p+20:]))+eocdLen+p > len(buf) {
		return false
	}
	at := size - n + int64(p)
	d := buf[p:]
	disk, cdDisk := binary.LittleEndian.Uint16(d[4:]), binary.LittleEndian.Uint16(d[6:])
	here, total := binary.LittleEndian.Uint16(d[8:]), binary.LittleEndian.Uint16(d[10:])
	cdSize, cdOff := int64(binary.LittleEndian.Uint32(d[12:])), int64(binary.LittleEndian.Uint32(d[16:]))
	if total == 0xffff || cdSize == 0xffffffff || cdOff == 0xffffffff {
		// zip64: the real fields are in the zip64 end record, which the
		// locator 20 bytes before points to; archive/zip reads them.
		var loc [4]byte
		if at >= 20 {
			if _, err := r.ReadAt(loc[:], at-20); err == nil && bytes.Equal(loc[:], magicZip64Locator) {
				return true
			}
		}
	}
	return disk == 0 && cdDisk == 0 && here == total && total > 0 && cdSize+cdOff <= at
}

// lastIndex is bytes.LastIndex by repeated bytes.Index, which is
// vectorised where LastIndex's Rabin-Karp is not: most parts are not zips,
// and LastIndex over their last 65 KiB was a sixth of a scan's CPU.
func lastIndex(b, sep []byte) int {
	last := -1
	for i := 0; ; {
		j := bytes.Index(b[i:], sep)
		if j < 0 {
			return last
		}
		last = i + j
		i = last + 1
	}
}

// findSignature returns the first 7z or RAR archive in the first
// sfxSearch bytes whose header checks out.
func findSignature(r io.ReaderAt, size int64) (Format, int64, bool) {
	limit := min(size, sfxSearch)
	const overlap = 7 // a signature across two chunks: its first bytes are read again
	bp := tailBufs.Get().(*[]byte)
	defer tailBufs.Put(bp)
	buf := (*bp)[:min(limit, sfxChunk)]
	for start := int64(0); start < limit; start += int64(len(buf)) - overlap {
		n := min(int64(len(buf)), limit-start)
		m, _ := r.ReadAt(buf[:n], start)
		chunk := buf[:m]
		for i := 0; i < len(chunk); {
			j := indexEither(chunk[i:])
			if j < 0 {
				break
			}
			off := start + int64(i+j)
			if f, ok := checkSignature(r, size, off); ok {
				return f, off, true
			}
			i += j + 1
		}
		if int64(m) < n || start+n >= limit {
			break
		}
	}
	return "", 0, false
}

// indexEither is the first index of "7z\xbc" or "Rar!" in b; the rest of
// each signature is checked by checkSignature.
func indexEither(b []byte) int {
	best := -1
	for _, s := range [][]byte{magic7z[:3], magicRar[:4]} {
		if i := bytes.Index(b, s); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// checkSignature reads what is at off and tells whether it is the start
// of a 7z or RAR archive with a valid first header.
func checkSignature(r io.ReaderAt, size, off int64) (Format, bool) {
	var b [32]byte
	n, _ := r.ReadAt(b[:min(int64(len(b)), size-off)], off)
	h := b[:n]
	switch {
	case bytes.HasPrefix(h, magic7z):
		// Signature header (7zFormat.txt): signature, version, CRC of the
		// next 20 bytes (next header offset, size and CRC).
		return SevenZip, len(h) == 32 && h[6] == 0 && crc32.ChecksumIEEE(h[12:32]) == binary.LittleEndian.Uint32(h[8:12])
	case bytes.HasPrefix(h, magicRar4):
		return Rar, rar4MainHeaderOK(r, size, off+int64(len(magicRar4)))
	case bytes.HasPrefix(h, magicRar5):
		return Rar, rar5MainHeaderOK(r, size, off+int64(len(magicRar5)))
	}
	return "", false
}

// rar4MainHeaderOK checks the archive header after a RAR 4 marker block:
// HEAD_CRC is the low 16 bits of the CRC32 of the header from HEAD_TYPE
// on, HEAD_TYPE is 0x73 and HEAD_SIZE at least 13 (technote, "MAIN_HEAD").
func rar4MainHeaderOK(r io.ReaderAt, size, off int64) bool {
	var fixed [7]byte
	if off+7 > size {
		return false
	}
	if _, err := r.ReadAt(fixed[:], off); err != nil {
		return false
	}
	hsize := int64(binary.LittleEndian.Uint16(fixed[5:]))
	if fixed[2] != 0x73 || hsize < 13 || off+hsize > size {
		return false
	}
	h := make([]byte, hsize)
	if _, err := r.ReadAt(h, off); err != nil {
		return false
	}
	return uint16(crc32.ChecksumIEEE(h[2:])) == binary.LittleEndian.Uint16(h)
}

// rar5MainHeaderOK checks the first header after a RAR 5 signature: a
// CRC32 of the header size (a vint) and the header, whose type is 1 (main
// archive header) or 4 (archive encryption header, for -hp archives).
func rar5MainHeaderOK(r io.ReaderAt, size, off int64) bool {
	var b [4 + 3]byte // CRC32 and a header size vint; main headers are small
	n, _ := r.ReadAt(b[:max(min(int64(len(b)), size-off), 0)], off)
	if n < 5 {
		return false
	}
	hsize, vlen := binary.Uvarint(b[4:n])
	if vlen <= 0 || hsize == 0 || hsize > 1<<16 || off+4+int64(vlen)+int64(hsize) > size {
		return false
	}
	h := make([]byte, vlen+int(hsize))
	if _, err := r.ReadAt(h, off+4); err != nil {
		return false
	}
	if crc32.ChecksumIEEE(h) != binary.LittleEndian.Uint32(b[:4]) {
		return false
	}
	typ, tlen := binary.Uvarint(h[vlen:])
	return tlen > 0 && (typ == 1 || typ == 4)
}
