package archive

import (
	"bytes"
	"encoding/binary"
	"io"
	"regexp"
	"strings"
	"unicode/utf16"
)

// pdfWindow is how much of each end of a PDF is searched for /Encrypt: the
// trailer (or xref stream dictionary) is at the end, and at the start too
// in a linearized file.
const pdfWindow = 64 << 10

var magicCFB = []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}

// EncryptedDocument reports whether the size bytes of r are a
// password-protected document the engines cannot read:
//
//   - an OLE compound file (MS-CFB) with a directory entry named
//     EncryptionInfo or EncryptedPackage: an Office 2007+ document
//     encrypted with a password (MS-OFFCRYPTO 2.3.4), which is a CFB
//     wrapping the encrypted OOXML package. kind is "office" for any
//     compound file. Legacy binary .doc/.xls/.ppt encryption (the FIB's
//     fEncrypted bit, BIFF's FILEPASS record, RC4 CryptoAPI streams) is
//     out of scope: it would need each format's own parser.
//   - a PDF ("%PDF-" in its first KiB) whose trailer or cross-reference
//     stream dictionary has /Encrypt (ISO 32000-1 7.5.5, 7.6.1). kind is
//     "pdf". Only the first and last 64 KiB are searched.
//
// It reads only what it needs: the CFB header and directory sectors (a
// bounded number, loops in the FAT chain stopped), or the PDF's two ends.
func EncryptedDocument(r io.ReaderAt, size int64) (kind string, encrypted bool) {
	head := make([]byte, min(size, 1024))
	if n, _ := r.ReadAt(head, 0); n < len(head) {
		head = head[:n]
	}
	switch {
	case bytes.HasPrefix(head, magicCFB):
		return "office", cfbEncrypted(r, size)
	case bytes.Contains(head, []byte("%PDF-")):
		return "pdf", pdfEncrypted(r, size)
	}
	return "", false
}

// pdfEncryptRe matches the /Encrypt key with its value, an indirect
// reference or a dictionary, so that /EncryptMetadata does not count.
var pdfEncryptRe = regexp.MustCompile(`/Encrypt[\x00\t\n\f\r ]*(?:\d+[\x00\t\n\f\r ]+\d+[\x00\t\n\f\r ]+R|<<)`)

func pdfEncrypted(r io.ReaderAt, size int64) bool {
	first := make([]byte, min(size, pdfWindow))
	n, _ := r.ReadAt(first, 0)
	if pdfEncryptRe.Match(first[:n]) {
		return true
	}
	if size <= pdfWindow {
		return false
	}
	last := make([]byte, pdfWindow)
	n, _ = r.ReadAt(last, size-pdfWindow)
	return pdfEncryptRe.Match(last[:n])
}

// CFB header fields and sector ids (MS-CFB 2.2, 2.1).
const (
	cfbHeaderSize    = 512
	cfbHeaderDIFAT   = 109
	cfbMaxRegular    = 0xfffffffa // ids from here up are special (ENDOFCHAIN, FREESECT…)
	cfbDirEntrySize  = 128
	cfbMaxDirSectors = 4096 // 16384 entries at 512-byte sectors: far above real documents
	cfbMaxDIFAT      = 1024
)

// cfb reads the directory of a compound file: just enough to list names.
type cfb struct {
	r          io.ReaderAt
	size       int64
	shift      uint
	header     []byte
	firstDIFAT uint32
	numDIFAT   uint32
	difat      []uint32 // DIFAT entries past the header's 109, read on demand
	difatRead  bool
}

func cfbEncrypted(r io.ReaderAt, size int64) bool {
	c := &cfb{r: r, size: size, header: make([]byte, cfbHeaderSize)}
	if _, err := r.ReadAt(c.header, 0); err != nil {
		return false
	}
	h := c.header
	if binary.LittleEndian.Uint16(h[0x1c:]) != 0xfffe {
		return false
	}
	switch shift := binary.LittleEndian.Uint16(h[0x1e:]); shift {
	case 9, 12:
		c.shift = uint(shift)
	default:
		return false
	}
	c.firstDIFAT = binary.LittleEndian.Uint32(h[0x44:])
	c.numDIFAT = binary.LittleEndian.Uint32(h[0x48:])
	found := false
	c.directory(binary.LittleEndian.Uint32(h[0x30:]), func(name string) bool {
		if strings.EqualFold(name, "EncryptionInfo") || strings.EqualFold(name, "EncryptedPackage") {
			found = true
			return false
		}
		return true
	})
	return found
}

func (c *cfb) sectorSize() int64 { return 1 << c.shift }

func (c *cfb) readSector(s uint32, p []byte) bool {
	off := (int64(s) + 1) << c.shift
	if s >= cfbMaxRegular || off+int64(len(p)) > c.size {
		return false
	}
	_, err := c.r.ReadAt(p, off)
	return err == nil
}

// fatSector returns the sector holding FAT page i (MS-CFB 2.5).
func (c *cfb) fatSector(i uint32) (uint32, bool) {
	if i < cfbHeaderDIFAT {
		return binary.LittleEndian.Uint32(c.header[0x4c+4*i:]), true
	}
	if !c.difatRead {
		c.difatRead = true
		per := uint32(c.sectorSize()/4) - 1 // the last entry chains to the next DIFAT sector
		buf := make([]byte, c.sectorSize())
		seen := map[uint32]bool{}
		for s, n := c.firstDIFAT, uint32(0); s < cfbMaxRegular && n < c.numDIFAT && n < cfbMaxDIFAT && !seen[s]; n++ {
			seen[s] = true
			if !c.readSector(s, buf) {
				break
			}
			for j := uint32(0); j < per; j++ {
				c.difat = append(c.difat, binary.LittleEndian.Uint32(buf[4*j:]))
			}
			s = binary.LittleEndian.Uint32(buf[4*per:])
		}
	}
	i -= cfbHeaderDIFAT
	if int(i) >= len(c.difat) {
		return 0, false
	}
	return c.difat[i], true
}

// nextSector follows the FAT chain from s.
func (c *cfb) nextSector(s uint32) (uint32, bool) {
	per := uint32(c.sectorSize() / 4)
	fs, ok := c.fatSector(s / per)
	if !ok {
		return 0, false
	}
	var b [4]byte
	off := (int64(fs)+1)<<c.shift + int64(s%per)*4
	if fs >= cfbMaxRegular || off+4 > c.size {
		return 0, false
	}
	if _, err := c.r.ReadAt(b[:], off); err != nil {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[:]), true
}

// directory calls fn with the name of every directory entry in use, in
// sector order, until fn returns false or the chain ends, loops or leaves
// the file.
func (c *cfb) directory(s uint32, fn func(string) bool) {
	buf := make([]byte, c.sectorSize())
	seen := map[uint32]bool{}
	for n := 0; s < cfbMaxRegular && n < cfbMaxDirSectors && !seen[s]; n++ {
		seen[s] = true
		if !c.readSector(s, buf) {
			return
		}
		for e := buf; len(e) >= cfbDirEntrySize; e = e[cfbDirEntrySize:] {
			typ := e[0x42]
			nameLen := int(binary.LittleEndian.Uint16(e[0x40:]))
			if typ == 0 || nameLen < 2 || nameLen > 64 {
				continue // unused entry
			}
			u := make([]uint16, (nameLen-2)/2)
			for i := range u {
				u[i] = binary.LittleEndian.Uint16(e[2*i:])
			}
			if !fn(string(utf16.Decode(u))) {
				return
			}
		}
		next, ok := c.nextSector(s)
		if !ok {
			return
		}
		s = next
	}
}
