package archive

// Folders (7z's unit of coders and streams) in the header, and the
// decoder of an encoded header's folder.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
)

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
		id, err := p.bytes(uint64(flags&0x0f), p.keep || p.uncommon != nil)
		if err != nil {
			return nil, err
		}
		if p.uncommon != nil && !common7zCoder(id) {
			*p.uncommon = true
		}
		if p.keep {
			c.id = id
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

// common7zCoders are the 7z coders ClamAV 1.4.6 was seen to decode from a
// raw message (TestClamdCoverageAttacks): copy, LZMA, LZMA2, PPMd and the
// BCJ, ARM, SPARC and ARM64 filters, and 7zAES, whose members are sent
// anyway. It does not decode Delta or BCJ2, which 7-Zip and sevenzip do;
// other coders were not measured.
var common7zCoders = [][]byte{{0x00}, method7zLZMA, method7zLZMA2, method7zPPMd,
	{0x03, 0x03, 0x01, 0x03}, {0x03, 0x03, 0x05, 0x01}, {0x03, 0x03, 0x08, 0x05}, {0x0a}, method7zAES}

func common7zCoder(id []byte) bool {
	return slices.ContainsFunc(common7zCoders, func(c []byte) bool { return bytes.Equal(c, id) })
}
