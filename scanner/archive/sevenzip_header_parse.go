package archive

// The parser of the 7z header structure (7zFormat.txt), used by
// check7zHeader to bound every count before sevenzip allocates from it.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// hdrParser reads a header's properties from r, of which left bytes
// remain; it keeps what an encoded header's decoding needs when keep.
type hdrParser struct {
	r          io.ByteReader
	left       int64
	maxMembers int
	keep       bool
	// uncommon, when set, is set to true on a coder outside common7zCoders.
	uncommon *bool
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

// members checks a count of entries against the Budget's MaxMembers.
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
