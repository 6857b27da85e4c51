package archive

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// sevenzip (v1.6.5) trusts the counts of a 7z header: it allocates
// slices of the number of files, folders, streams or coder streams it
// declares (up to 2^32 entries each) before reading the entries, so a
// header of a few bytes makes it allocate tens of gigabytes, a fatal
// out-of-memory that recover() does not catch. check7zHeader reads the
// header first, as sevenzip will (its grammar, 7-Zip's DOC/7zFormat.txt),
// and refuses an archive with a count that the header's remaining bytes
// could not describe, above max7zCount, or (for entries) far above
// the Budget's MaxMembers. sevenzip never sees an archive whose counts were not
// checked: openSevenZip calls check7zHeader before sevenzip.NewReader.
//
// An encoded header (kEncodedHeader: the real header packed, LZMA as 7-Zip
// writes it, AES-encrypted too with -mhe) is decoded here, with this
// package's own coders (sevenzip.go, decrypt_7z.go) and the same password
// token sevenzip will be given, after checking the counts of the
// StreamsInfo that describes it and bounding its unpacked size by
// max7zHeader; its counts are then checked as a plain header's. sevenzip
// decodes it a second time (it has no API to be handed a header), from the
// same bytes with the same coders, so it reads the header checked here.
// Only simple chains of one-input coders (Copy, LZMA, LZMA2, PPMd, 7zAES)
// are decoded; a header packed otherwise is refused as Unscannable rather
// than handed unchecked to sevenzip. 7-Zip writes LZMA, with 7zAES in
// front for encrypted headers.

const (
	// max7zCount bounds every count of a header (files, folders, pack
	// streams, substreams), whatever the header's size: sevenzip spends
	// a few hundred bytes per file.
	max7zCount = 1 << 20
	// max7zMembersSlack: a header declaring more than this many times
	// the Budget's MaxMembers files (or folders, or substreams) is refused
	// as max_members before sevenzip reads it, so that sevenzip's
	// allocations stay proportional to the limit. Up to that, the walk
	// visits entries until the budget's members run out, as for the other
	// formats.
	max7zMembersSlack = 16
	// max7zHeader bounds the unpacked size of an encoded header.
	max7zHeader = 64 << 20
	// max7zFolderStreams bounds the coders and the coder streams of one
	// folder: 7-Zip's own limit (k_Scan_NumCodersStreams_in_Folder_MAX).
	max7zFolderStreams = 64
)

// 7z property ids (7zFormat.txt).
const (
	k7zEnd              = 0x00
	k7zHeader           = 0x01
	k7zArchiveProps     = 0x02
	k7zAdditionalStream = 0x03
	k7zMainStreamsInfo  = 0x04
	k7zFilesInfo        = 0x05
	k7zPackInfo         = 0x06
	k7zUnpackInfo       = 0x07
	k7zSubStreamsInfo   = 0x08
	k7zSize             = 0x09
	k7zCRC              = 0x0a
	k7zFolder           = 0x0b
	k7zCodersUnpackSize = 0x0c
	k7zNumUnpackStream  = 0x0d
	k7zEmptyStream      = 0x0e
	k7zEmptyFile        = 0x0f
	k7zName             = 0x11
	k7zCTime            = 0x12
	k7zATime            = 0x13
	k7zMTime            = 0x14
	k7zWinAttributes    = 0x15
	k7zEncodedHeader    = 0x17
	k7zStartPos         = 0x18
	k7zDummy            = 0x19
)

// sevenZipHeaderError is a header check7zHeader refuses: the Problem
// to record for the archive.
type sevenZipHeaderError struct {
	kind   ProblemKind
	detail string
}

func (e *sevenZipHeaderError) Error() string { return e.detail }

func corrupt7zHeader(format string, args ...any) error {
	return &sevenZipHeaderError{Unscannable, "7z: corrupt archive: header: " + fmt.Sprintf(format, args...)}
}

var errShort7zHeader = &sevenZipHeaderError{Unscannable, "7z: corrupt archive: header: truncated"}

// check7zHeader checks the headers of the 7z archive in the size bytes of
// r before sevenzip reads them. password is what sevenzip will be given
// (a session token, or ""), for an encrypted encoded header. A refusal is
// a *sevenZipHeaderError; a failure to decode an encoded header is the
// coder's error (errEncrypted7z without a password, a *passwordError,
// errDictionaryTooLarge, a corrupt stream).
func check7zHeader(r io.ReaderAt, size int64, password string, maxMembers int) error {
	return check7zHeaderCoders(r, size, password, maxMembers, nil)
}

// check7zHeaderCoders is check7zHeader that also sets *uncommon (when not
// nil) if a folder, or the encoded header's, uses a coder outside
// common7zCoders.
func check7zHeaderCoders(r io.ReaderAt, size int64, password string, maxMembers int, uncommon *bool) error {
	var sh [32]byte
	if size < int64(len(sh)) {
		return &sevenZipHeaderError{Unscannable, "7z: truncated archive: no signature header"}
	}
	if _, err := r.ReadAt(sh[:], 0); err != nil {
		return fmt.Errorf("7z signature header: %w", err)
	}
	if !bytes.Equal(sh[:6], magic7z) {
		// sevenzip would search further for a signature: only one at the
		// start is read.
		return corrupt7zHeader("no signature at the start")
	}
	if crc32.ChecksumIEEE(sh[12:32]) != binary.LittleEndian.Uint32(sh[8:]) {
		return corrupt7zHeader("start header CRC mismatch")
	}
	off := binary.LittleEndian.Uint64(sh[12:])
	hsize := binary.LittleEndian.Uint64(sh[20:])
	want := binary.LittleEndian.Uint32(sh[28:])
	room := uint64(size - 32)
	if off > room || hsize > room-off {
		return &sevenZipHeaderError{Unscannable, fmt.Sprintf(
			"7z: truncated archive: header at %d+%d is beyond the archive's %d bytes", off, hsize, size)}
	}
	if hsize == 0 {
		return nil // an empty archive: nothing for sevenzip to allocate
	}
	start := 32 + int64(off)
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, io.NewSectionReader(r, start, int64(hsize))); err != nil {
		return fmt.Errorf("7z header: %w", err)
	}
	if h.Sum32() != want {
		return corrupt7zHeader("CRC mismatch")
	}
	p := &hdrParser{r: bufio.NewReader(io.NewSectionReader(r, start, int64(hsize))), left: int64(hsize), maxMembers: maxMembers, uncommon: uncommon}
	id, err := p.byte()
	if err != nil {
		return err
	}
	switch id {
	case k7zHeader:
		if err := p.header(); err != nil {
			return err
		}
	case k7zEncodedHeader:
		p.keep = true
		si, err := p.streamsInfo()
		if err != nil {
			return err
		}
		if p.left != 0 {
			return corrupt7zHeader("data after the header")
		}
		return check7zEncodedHeader(r, size, si, password, maxMembers, uncommon)
	default:
		return corrupt7zHeader("unexpected id %#x", id)
	}
	if p.left != 0 {
		return corrupt7zHeader("data after the header")
	}
	return nil
}

// check7zEncodedHeader decodes the header si describes and checks it.
func check7zEncodedHeader(r io.ReaderAt, size int64, si *streams7z, password string, maxMembers int, uncommon *bool) error {
	if len(si.folders) != 1 || si.pack == nil {
		return corrupt7zHeader("the encoded header is not one packed folder")
	}
	f := si.folders[0]
	if len(f.packed) != 1 || len(si.pack.sizes) < 1 {
		return corrupt7zHeader("the encoded header is not one packed stream")
	}
	psize := si.pack.sizes[0]
	room := uint64(size - 32)
	if si.pack.position > room || psize > room-si.pack.position {
		return &sevenZipHeaderError{Unscannable, "7z: truncated archive: the packed header is beyond the archive"}
	}
	usize := f.unpackSize()
	if usize > max7zHeader {
		return &sevenZipHeaderError{Unscannable, fmt.Sprintf("7z header too large (%d bytes unpacked, limit %d MiB)", usize, max7zHeader>>20)}
	}
	packed := io.NewSectionReader(r, 32+int64(si.pack.position), int64(psize))
	rc, err := f.decoder(packed, password)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := crc32.NewIEEE()
	br := bufio.NewReader(io.TeeReader(io.LimitReader(rc, int64(usize)), h))
	p := &hdrParser{r: br, left: int64(usize), maxMembers: maxMembers, uncommon: uncommon}
	id, err := p.byte()
	if err == nil && id != k7zHeader {
		err = corrupt7zHeader("unexpected id %#x in the encoded header", id)
	}
	if err == nil {
		err = p.header()
	}
	// A wrong password gives garbage, with any counts: the CRC tells it
	// from a crafted header.
	if _, cerr := io.Copy(io.Discard, br); cerr != nil && (err == nil || errors.Is(err, errShort7zHeader)) {
		return fmt.Errorf("7z encoded header: %w", cerr)
	}
	if f.crcDefined && h.Sum32() != f.crc {
		return errors.New("7z encoded header: CRC mismatch")
	}
	return err
}
