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
// Limits.MaxMembers. sevenzip never sees an archive whose counts were not
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
	// Limits.MaxMembers files (or folders, or substreams) is refused as
	// max_members before sevenzip reads it, so that sevenzip's
	// allocations stay proportional to the limit. Up to that, the walk
	// visits the first MaxMembers entries and then stops, as for the
	// other formats.
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
	p := &hdrParser{r: bufio.NewReader(io.NewSectionReader(r, start, int64(hsize))), left: int64(hsize), maxMembers: maxMembers}
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
		return check7zEncodedHeader(r, size, si, password, maxMembers)
	default:
		return corrupt7zHeader("unexpected id %#x", id)
	}
	if p.left != 0 {
		return corrupt7zHeader("data after the header")
	}
	return nil
}

// check7zEncodedHeader decodes the header si describes and checks it.
func check7zEncodedHeader(r io.ReaderAt, size int64, si *streams7z, password string, maxMembers int) error {
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
	p := &hdrParser{r: br, left: int64(usize), maxMembers: maxMembers}
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

// hdrParser reads a header's properties from r, of which left bytes
// remain; it keeps what an encoded header's decoding needs when keep.
type hdrParser struct {
	r          io.ByteReader
	left       int64
	maxMembers int
	keep       bool
}

type streams7z struct {
	pack    *pack7z
	folders []*folder7z
}

type pack7z struct {
	position uint64
	sizes    []uint64
}

type folder7z struct {
	coders     []coder7z
	bindPairs  [][2]uint64 // in, out
	packed     []uint64
	sizes      []uint64
	outs       uint64
	crc        uint32
	crcDefined bool
}

type coder7z struct {
	id, props []byte
	in, out   uint64
}

func (p *hdrParser) byte() (byte, error) {
	if p.left <= 0 {
		return 0, errShort7zHeader
	}
	b, err := p.r.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errShort7zHeader
		}
		return 0, err
	}
	p.left--
	return b, nil
}

// number reads 7z's variable-length UINT64: the leading one bits of the
// first byte count the bytes that follow, little-endian, and the rest of
// the first byte is the high part.
func (p *hdrParser) number() (uint64, error) {
	first, err := p.byte()
	if err != nil {
		return 0, err
	}
	var v uint64
	mask := byte(0x80)
	for i := 0; i < 8; i++ {
		if first&mask == 0 {
			return v | uint64(first&(mask-1))<<(8*i), nil
		}
		b, err := p.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b) << (8 * i)
		mask >>= 1
	}
	return v, nil
}

// bytes reads n bytes of the header, or skips them when keep is false.
func (p *hdrParser) bytes(n uint64, keep bool) ([]byte, error) {
	if n > uint64(p.left) {
		return nil, errShort7zHeader
	}
	var out []byte
	if keep {
		out = make([]byte, 0, n)
	}
	for range n {
		b, err := p.byte()
		if err != nil {
			return nil, err
		}
		if keep {
			out = append(out, b)
		}
	}
	return out, nil
}

// count checks a count of what (files, folders...) read from the header:
// each needs at least one more byte of the header (or, when perByte, one
// bit: a bit vector), and there are at most max7zCount. nonZero is
// sevenzip's own rule for the count.
func (p *hdrParser) count(n uint64, what string, nonZero bool) error {
	if nonZero && n == 0 {
		return corrupt7zHeader("no %s", what)
	}
	if n > max7zCount || n > uint64(p.left) {
		return &sevenZipHeaderError{Unscannable, fmt.Sprintf("7z header declares %d %s, more than the archive can hold", n, what)}
	}
	return nil
}

// members checks a count of entries against Limits.MaxMembers.
func (p *hdrParser) members(n uint64, what string) error {
	if p.maxMembers > 0 && n > uint64(p.maxMembers)*max7zMembersSlack {
		return &sevenZipHeaderError{LimitExceeded, fmt.Sprintf("max_members %d (the 7z header declares %d %s)", p.maxMembers, n, what)}
	}
	return nil
}

// boolVector reads n bits and returns how many are set.
func (p *hdrParser) boolVector(n uint64) (uint64, error) {
	set := uint64(0)
	var b byte
	for i := range n {
		if i%8 == 0 {
			var err error
			if b, err = p.byte(); err != nil {
				return 0, err
			}
		}
		if b&(0x80>>(i%8)) != 0 {
			set++
		}
	}
	return set, nil
}

// optionalBool is an "all defined" byte, else a bit vector.
func (p *hdrParser) optionalBool(n uint64) (uint64, error) {
	all, err := p.byte()
	if err != nil {
		return 0, err
	}
	if all != 0 {
		return n, nil
	}
	return p.boolVector(n)
}

// digests reads the CRCs of n items; it returns the first when keep.
func (p *hdrParser) digests(n uint64) (uint32, bool, error) {
	if n == 0 {
		return 0, false, corrupt7zHeader("CRCs of nothing")
	}
	all, err := p.byte()
	if err != nil {
		return 0, false, err
	}
	first := true
	if all == 0 {
		// The first bit says whether the first item has a CRC.
		if n > uint64(p.left)*8 {
			return 0, false, errShort7zHeader
		}
		var b byte
		set := uint64(0)
		for i := range n {
			if i%8 == 0 {
				if b, err = p.byte(); err != nil {
					return 0, false, err
				}
			}
			if b&(0x80>>(i%8)) != 0 {
				set++
			} else if i == 0 {
				first = false
			}
		}
		n = set
	}
	if n > uint64(p.left)/4 {
		return 0, false, errShort7zHeader
	}
	var crc uint32
	for i := range n {
		c, err := p.bytes(4, true)
		if err != nil {
			return 0, false, err
		}
		if i == 0 {
			crc = binary.LittleEndian.Uint32(c)
		}
	}
	return crc, first && n > 0, nil
}

func (p *hdrParser) expect(id byte, where string) error {
	got, err := p.byte()
	if err != nil {
		return err
	}
	if got != id {
		return corrupt7zHeader("unexpected id %#x in %s", got, where)
	}
	return nil
}

// header is 7zFormat.txt's Header, after its kHeader id.
func (p *hdrParser) header() error {
	id, err := p.byte()
	if err != nil {
		return err
	}
	if id == k7zArchiveProps || id == k7zAdditionalStream {
		return corrupt7zHeader("unsupported property %#x", id)
	}
	if id == k7zMainStreamsInfo {
		if _, err := p.streamsInfo(); err != nil {
			return err
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	}
	if id == k7zFilesInfo {
		if err := p.filesInfo(); err != nil {
			return err
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	}
	if id != k7zEnd {
		return corrupt7zHeader("unexpected id %#x", id)
	}
	return nil
}

func (p *hdrParser) streamsInfo() (*streams7z, error) {
	si := &streams7z{}
	id, err := p.byte()
	if err != nil {
		return nil, err
	}
	if id == k7zPackInfo {
		if si.pack, err = p.packInfo(); err != nil {
			return nil, err
		}
		if id, err = p.byte(); err != nil {
			return nil, err
		}
	}
	unpack := false
	if id == k7zUnpackInfo {
		unpack = true
		if si.folders, err = p.unpackInfo(); err != nil {
			return nil, err
		}
		if id, err = p.byte(); err != nil {
			return nil, err
		}
	}
	if id == k7zSubStreamsInfo {
		if !unpack {
			return nil, corrupt7zHeader("substreams without folders")
		}
		if err := p.subStreamsInfo(si.folders); err != nil {
			return nil, err
		}
		if id, err = p.byte(); err != nil {
			return nil, err
		}
	}
	if id != k7zEnd {
		return nil, corrupt7zHeader("unexpected id %#x in streams info", id)
	}
	return si, nil
}

func (p *hdrParser) packInfo() (*pack7z, error) {
	pi := &pack7z{}
	var err error
	if pi.position, err = p.number(); err != nil {
		return nil, err
	}
	n, err := p.number()
	if err != nil {
		return nil, err
	}
	if err := p.count(n, "pack streams", true); err != nil {
		return nil, err
	}
	id, err := p.byte()
	if err != nil {
		return nil, err
	}
	if id == k7zSize {
		for range n {
			s, err := p.number()
			if err != nil {
				return nil, err
			}
			if p.keep {
				pi.sizes = append(pi.sizes, s)
			}
		}
		if id, err = p.byte(); err != nil {
			return nil, err
		}
	}
	if id == k7zCRC {
		if _, _, err := p.digests(n); err != nil {
			return nil, err
		}
		if id, err = p.byte(); err != nil {
			return nil, err
		}
	}
	if id != k7zEnd {
		return nil, corrupt7zHeader("unexpected id %#x in pack info", id)
	}
	return pi, nil
}

func (p *hdrParser) unpackInfo() ([]*folder7z, error) {
	if err := p.expect(k7zFolder, "unpack info"); err != nil {
		return nil, err
	}
	n, err := p.number()
	if err != nil {
		return nil, err
	}
	if err := p.count(n, "folders", true); err != nil {
		return nil, err
	}
	if err := p.members(n, "folders"); err != nil {
		return nil, err
	}
	external, err := p.byte()
	if err != nil {
		return nil, err
	}
	if external != 0 {
		return nil, corrupt7zHeader("external folders")
	}
	folders := make([]*folder7z, 0, n) // n is bounded by the header's bytes and max7zCount
	for range n {
		f, err := p.folder()
		if err != nil {
			return nil, err
		}
		folders = append(folders, f)
	}
	if err := p.expect(k7zCodersUnpackSize, "unpack info"); err != nil {
		return nil, err
	}
	for _, f := range folders {
		for range f.outs {
			s, err := p.number()
			if err != nil {
				return nil, err
			}
			if p.keep {
				f.sizes = append(f.sizes, s)
			}
		}
	}
	id, err := p.byte()
	if err != nil {
		return nil, err
	}
	if id == k7zCRC {
		crc, ok, err := p.digests(n)
		if err != nil {
			return nil, err
		}
		folders[0].crc, folders[0].crcDefined = crc, ok
		if id, err = p.byte(); err != nil {
			return nil, err
		}
	}
	if id != k7zEnd {
		return nil, corrupt7zHeader("unexpected id %#x in unpack info", id)
	}
	return folders, nil
}

func (p *hdrParser) folder() (*folder7z, error) {
	f := &folder7z{}
	n, err := p.number()
	if err != nil {
		return nil, err
	}
	if err := p.count(n, "coders", true); err != nil {
		return nil, err
	}
	if n > max7zFolderStreams {
		return nil, &sevenZipHeaderError{Unscannable, fmt.Sprintf("7z header declares %d coders in a folder, more than the archive can hold", n)}
	}
	var ins uint64
	for range n {
		flags, err := p.byte()
		if err != nil {
			return nil, err
		}
		c := coder7z{in: 1, out: 1}
		if c.id, err = p.bytes(uint64(flags&0x0f), p.keep); err != nil {
			return nil, err
		}
		if flags&0x10 != 0 {
			if c.in, err = p.number(); err != nil {
				return nil, err
			}
			if c.out, err = p.number(); err != nil {
				return nil, err
			}
			if c.in == 0 || c.out == 0 {
				return nil, corrupt7zHeader("a coder without streams")
			}
		}
		if c.in > max7zFolderStreams || c.out > max7zFolderStreams {
			return nil, &sevenZipHeaderError{Unscannable, "7z header declares more coder streams than the archive can hold"}
		}
		if flags&0x20 != 0 {
			size, err := p.number()
			if err != nil {
				return nil, err
			}
			if size == 0 {
				return nil, corrupt7zHeader("empty coder properties")
			}
			if c.props, err = p.bytes(size, p.keep); err != nil {
				return nil, err
			}
		}
		ins += c.in
		f.outs += c.out
		if p.keep {
			f.coders = append(f.coders, c)
		}
	}
	if ins > max7zFolderStreams || f.outs > max7zFolderStreams {
		return nil, &sevenZipHeaderError{Unscannable, fmt.Sprintf("7z header declares %d+%d coder streams in a folder, more than the archive can hold", ins, f.outs)}
	}
	if ins < f.outs {
		return nil, corrupt7zHeader("invalid bind pairs")
	}
	bindPairs := f.outs - 1
	for range bindPairs {
		in, err := p.number()
		if err != nil {
			return nil, err
		}
		out, err := p.number()
		if err != nil {
			return nil, err
		}
		if in >= ins || out >= f.outs {
			return nil, corrupt7zHeader("invalid bind pair")
		}
		f.bindPairs = append(f.bindPairs, [2]uint64{in, out})
	}
	packed := ins - bindPairs
	if packed == 1 {
		for i := range ins {
			if f.findIn(i) < 0 {
				f.packed = append(f.packed, i)
			}
		}
	} else {
		for range packed {
			v, err := p.number()
			if err != nil {
				return nil, err
			}
			f.packed = append(f.packed, v)
		}
	}
	return f, nil
}

func (f *folder7z) findIn(in uint64) int {
	for i, bp := range f.bindPairs {
		if bp[0] == in {
			return i
		}
	}
	return -1
}

func (f *folder7z) boundOut(out uint64) bool {
	for _, bp := range f.bindPairs {
		if bp[1] == out {
			return true
		}
	}
	return false
}

// unpackSize is the size of the folder's unbound output, as sevenzip
// takes it.
func (f *folder7z) unpackSize() uint64 {
	for i := len(f.sizes) - 1; i >= 0; i-- {
		if !f.boundOut(uint64(i)) {
			return f.sizes[i]
		}
	}
	if len(f.sizes) == 0 {
		return 0
	}
	return f.sizes[len(f.sizes)-1]
}

func (p *hdrParser) subStreamsInfo(folders []*folder7z) error {
	id, err := p.byte()
	if err != nil {
		return err
	}
	streams := make([]uint64, len(folders))
	total := uint64(len(folders))
	if id == k7zNumUnpackStream {
		total = 0
		for i := range streams {
			if streams[i], err = p.number(); err != nil {
				return err
			}
			if streams[i] > max7zCount {
				return p.count(streams[i], "streams", false)
			}
			total += streams[i]
		}
		if err := p.count(total, "streams", false); err != nil {
			return err
		}
		if err := p.members(total, "streams"); err != nil {
			return err
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	} else {
		for i := range streams {
			streams[i] = 1
		}
	}
	if id == k7zSize {
		for _, s := range streams {
			for j := uint64(1); j < s; j++ {
				if _, err := p.number(); err != nil {
					return err
				}
			}
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	}
	if id == k7zCRC {
		if _, _, err := p.digests(total); err != nil {
			return err
		}
		if id, err = p.byte(); err != nil {
			return err
		}
	}
	if id != k7zEnd {
		return corrupt7zHeader("unexpected id %#x in substreams info", id)
	}
	return nil
}

func (p *hdrParser) filesInfo() error {
	files, err := p.number()
	if err != nil {
		return err
	}
	if err := p.count(files, "files", true); err != nil {
		return err
	}
	if err := p.members(files, "files"); err != nil {
		return err
	}
	var emptyStreams uint64
	for {
		prop, err := p.byte()
		if err != nil {
			return err
		}
		if prop == k7zEnd {
			return nil
		}
		length, err := p.number()
		if err != nil {
			return err
		}
		switch prop {
		case k7zEmptyStream:
			if emptyStreams, err = p.boolVector(files); err != nil {
				return err
			}
		case k7zEmptyFile:
			if emptyStreams == 0 {
				return corrupt7zHeader("empty files without empty streams")
			}
			if _, err := p.boolVector(emptyStreams); err != nil {
				return err
			}
		case k7zCTime, k7zATime, k7zMTime, k7zWinAttributes:
			defined, err := p.optionalBool(files)
			if err != nil {
				return err
			}
			if err := p.expect(0, "files info (external)"); err != nil {
				return err
			}
			size := uint64(8)
			if prop == k7zWinAttributes {
				size = 4
			}
			if defined > uint64(p.left)/size {
				return errShort7zHeader
			}
			if _, err := p.bytes(defined*size, false); err != nil {
				return err
			}
		case k7zName:
			if err := p.expect(0, "files info (external)"); err != nil {
				return err
			}
			if length == 0 {
				return corrupt7zHeader("names of no length")
			}
			if _, err := p.bytes(length-1, false); err != nil {
				return err
			}
		case k7zDummy:
			if _, err := p.bytes(length, false); err != nil {
				return err
			}
		default:
			return corrupt7zHeader("unsupported file property %#x", prop)
		}
	}
}

// decoder builds the reader of a folder's unbound output, for an encoded
// header: a chain of one-input, one-output coders fed by one packed
// stream, decoded by this package's coders.
func (f *folder7z) decoder(packed io.Reader, password string) (io.ReadCloser, error) {
	unsupported := &sevenZipHeaderError{Unscannable, "7z: the encoded header's coders are not supported"}
	if len(f.coders) == 0 || len(f.packed) != 1 || len(f.sizes) != len(f.coders) {
		return nil, unsupported
	}
	for _, c := range f.coders {
		if c.in != 1 || c.out != 1 {
			return nil, unsupported
		}
	}
	final := -1
	for i := range f.coders {
		if !f.boundOut(uint64(i)) {
			if final >= 0 {
				return nil, unsupported
			}
			final = i
		}
	}
	if final < 0 {
		return nil, unsupported
	}
	var closers []io.Closer
	var out func(i, depth int) (io.ReadCloser, error)
	out = func(i, depth int) (io.ReadCloser, error) {
		if depth > len(f.coders) {
			return nil, unsupported // a cycle
		}
		// Coder i's one input is input i.
		var in io.ReadCloser
		if uint64(i) == f.packed[0] {
			in = io.NopCloser(bufio.NewReader(packed))
		} else {
			j := f.findIn(uint64(i))
			if j < 0 {
				return nil, unsupported
			}
			src := f.bindPairs[j][1]
			if src >= uint64(len(f.coders)) {
				return nil, unsupported
			}
			var err error
			if in, err = out(int(src), depth+1); err != nil {
				return nil, err
			}
		}
		c := f.coders[i]
		var rc io.ReadCloser
		var err error
		switch {
		case bytes.Equal(c.id, []byte{0x00}):
			rc = in
		case bytes.Equal(c.id, method7zLZMA):
			rc, err = lzmaDecoder(c.props, f.sizes[i], []io.ReadCloser{in})
		case bytes.Equal(c.id, method7zLZMA2):
			rc, err = lzma2Decoder(c.props, f.sizes[i], []io.ReadCloser{in})
		case bytes.Equal(c.id, method7zPPMd):
			rc, err = ppmdDecoder(c.props, f.sizes[i], []io.ReadCloser{in})
		case bytes.Equal(c.id, method7zAES):
			var a io.ReadCloser
			if a, err = aes7zDecoder(c.props, f.sizes[i], []io.ReadCloser{in}); err == nil {
				rc = a
				err = a.(*aes7zReader).Password(password)
			}
		default:
			return nil, unsupported
		}
		if err != nil {
			return nil, err
		}
		closers = append(closers, rc)
		return readCloser{io.LimitReader(rc, int64(min(f.sizes[i], 1<<62))), rc}, nil
	}
	rc, err := out(final, 0)
	if err != nil {
		for _, c := range closers {
			c.Close()
		}
		return nil, err
	}
	return rc, nil
}
